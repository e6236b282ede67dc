"""Arithmetic over cumulative snapshots: differences, rates and histogram quantiles.

Counters only grow within one process; a value lower than before means the process restarted, and
then the later value itself is the increase. Quantiles follow Prometheus' ``histogram_quantile``:
linear interpolation inside the bucket where the rank falls (so they are as fine as the buckets).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

KEY_RE = re.compile(r"^(?P<name>[^{]+)\{(?P<labels>.*)\}$")


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """The key of one sample: ``name{label=value,...}``, labels sorted (what ``key_parse`` reads)."""
    inner = ",".join(f"{key}={labels[key]}" for key in sorted(labels))
    return f"{name}{{{inner}}}"


def key_parse(key: str) -> tuple[str, dict[str, str]]:
    match = KEY_RE.match(key)
    if match is None:
        return key, {}
    labels = dict(part.split("=", 1) for part in match.group("labels").split(",") if "=" in part)
    return match.group("name"), labels


def counter_deltas(first: Mapping[str, float], last: Mapping[str, float]) -> dict[str, float]:
    """Increase of every series between two snapshots of the same source (restart-aware)."""
    out: dict[str, float] = {}
    for key, value in last.items():
        before = first.get(key, 0.0)
        out[key] = value - before if value >= before else value
    return out


def deltas_sum(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = defaultdict(float)
    for part in parts:
        for key, value in part.items():
            total[key] += value
    return dict(total)


def series_by_label(values: Mapping[str, float], name: str, label: str, **where: str) -> dict[str, float]:
    """``{label value: value}`` of the samples of ``name`` whose other labels match ``where``."""
    out: dict[str, float] = defaultdict(float)
    for key, value in values.items():
        sample, labels = key_parse(key)
        if sample != name or label not in labels:
            continue
        if all(labels.get(k) == v for k, v in where.items()):
            out[labels[label]] += value
    return dict(out)


def histogram_quantiles(
    values: Mapping[str, float], name: str, quantiles: Iterable[float], **where: str
) -> dict[float, float | None]:
    """Quantiles (in the histogram's unit) of ``name``'s buckets matching ``where``; None when empty."""
    buckets: dict[float, float] = defaultdict(float)
    for key, value in values.items():
        sample, labels = key_parse(key)
        if sample != f"{name}_bucket" or "le" not in labels:
            continue
        if all(labels.get(k) == v for k, v in where.items()):
            buckets[float(labels["le"])] += value
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    out: dict[float, float | None] = {}
    for q in quantiles:
        if total <= 0:
            out[q] = None
            continue
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        answer: float | None = None
        for bound in bounds:
            count = buckets[bound]
            if count >= rank:
                if math.isinf(bound):
                    answer = lower_bound  # above the top finite bucket: its bound is all we know
                else:
                    inside = count - lower_count
                    answer = (
                        bound
                        if inside <= 0
                        else lower_bound + (bound - lower_bound) * (rank - lower_count) / inside
                    )
                break
            lower_bound, lower_count = bound, count
        out[q] = answer
    return out


def histogram_label_values(values: Mapping[str, float], name: str, label: str, **where: str) -> list[str]:
    seen: set[str] = set()
    for key in values:
        sample, labels = key_parse(key)
        if (
            sample == f"{name}_bucket"
            and label in labels
            and all(labels.get(k) == v for k, v in where.items())
        ):
            seen.add(labels[label])
    return sorted(seen)
