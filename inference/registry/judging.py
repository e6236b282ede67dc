"""How a training run judges its models: the slice it judges on, the figure, and the activation rule.

The models learn from the events before the cut-off T (the ``1 - EVAL_FRACTION`` quantile of the event
times) and are judged on what users did after T, beside the four baselines and the active version of the
same algorithm, on exactly the same cases (EVALUATION.md's time split). Where the time cut leaves fewer than
``SLICE_MIN_USERS`` visitors with events on both sides, a decision on that slice is noise, so the run judges
on each visitor's own later events instead (the user split, when it holds more visitors).

A candidate is activated when ``activate="always"``, or with ``"auto"`` when it is at least as good as the
best baseline on ``PRIMARY_METRIC`` of that slice and not worse than the active version (or none is active).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from inference.events import EventRecord

__all__ = [
    "BASELINE_ALGORITHMS",
    "PRIMARY_METRIC",
    "SLICE_MIN_USERS",
    "activation_decide",
    "best_baseline",
    "metric",
    "validation_split",
]

PRIMARY_METRIC = "ndcg@5"
BASELINE_ALGORITHMS = ("decayed", "frequency", "recent", "popularity")
SLICE_MIN_USERS = 100


def validation_split(events: Sequence[EventRecord], *, quantile: float, horizon: int) -> tuple[Any, str]:
    """The slice the run judges on: the time split, unless it holds fewer than ``SLICE_MIN_USERS``
    visitors and the user split holds more (then why, else an empty string)."""
    from inference.evaluation.protocol import split_by_time, split_by_user

    by_time = split_by_time(events, quantile=quantile, horizon=horizon)
    if len(by_time.cases) >= SLICE_MIN_USERS:
        return by_time, ""
    by_user = split_by_user(events, quantile=quantile, horizon=horizon)
    if len(by_user.cases) <= len(by_time.cases):
        return by_time, ""
    return by_user, (
        f"the time slice held {len(by_time.cases)} visitors (< {SLICE_MIN_USERS}): judged on each "
        f"visitor's own later events, {len(by_user.cases)} visitors"
    )


def metric(results: Mapping[str, Any], name: str) -> float | None:
    value = (results.get(name) or {}).get(PRIMARY_METRIC)
    return float(value) if value is not None and math.isfinite(float(value)) else None


def best_baseline(results: Mapping[str, Any]) -> tuple[str, float] | None:
    """The servable baseline with the highest NDCG@5 on the slice (None when none was scored)."""
    scored = [(name, metric(results, name)) for name in BASELINE_ALGORITHMS]
    known = [(name, value) for name, value in scored if value is not None]
    if not known:
        return None
    return max(known, key=lambda item: item[1])  # max keeps the first of equals: BASELINE_ALGORITHMS order


def activation_decide(
    activate: str,
    candidate: float | None,
    active: float | None,
    has_active: bool,
    baseline: tuple[str, float] | None = None,
) -> tuple[bool, str]:
    if activate == "always":
        return True, "activate=always"
    if activate == "never":
        return False, "activate=never"
    if baseline is not None and candidate is not None and candidate < baseline[1]:
        return False, (
            f"{PRIMARY_METRIC} {candidate:.4f} < best baseline {baseline[0]} {baseline[1]:.4f}: "
            "registered, not served"
        )
    if not has_active:
        if baseline is not None and candidate is not None:
            return True, f"{PRIMARY_METRIC} {candidate:.4f} >= best baseline {baseline[0]} {baseline[1]:.4f}"
        return True, "no active version"
    if active is None:
        return (candidate is not None), "the active version could not be scored on the slice"
    if candidate is None:
        return False, "the candidate could not be scored on the slice"
    if candidate >= active:
        return True, f"{PRIMARY_METRIC} {candidate:.4f} >= active {active:.4f}"
    return False, f"{PRIMARY_METRIC} {candidate:.4f} < active {active:.4f}: active version kept"
