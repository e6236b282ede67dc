"""The snapshot windows every dashboard page reads: the metric snapshots of the last hour or day,
their counter increases (``WindowDeltas``), rate series for charts, latency tables from histogram
buckets, and the per-minute traffic counts. Every read is bounded (a limit, or a time window on an index).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from adsite.dashboard import series
from adsite.dashboard.models import MetricSnapshot, TrafficMinute

WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}

CHART_POINTS = 60

MAX_SOURCES = 8

QUANTILES = (0.5, 0.95, 0.99)
BREAKER_NAMES = {0: "closed", 1: "half_open", 2: "open"}


def snapshots_in(start: datetime, end: datetime) -> dict[str, list[tuple[datetime, dict[str, float]]]]:
    """Per source, up to CHART_POINTS+1 evenly spread snapshots in the window (two queries)."""
    index = list(
        MetricSnapshot.objects.filter(at__gte=start, at__lte=end)
        .order_by("at")
        .values_list("id", "at", "source")[:20_000]
    )
    by_source: dict[str, list[tuple[int, datetime]]] = {}
    for pk, at, source in index:
        by_source.setdefault(source, []).append((pk, at))
    latest_sources = sorted(by_source, key=lambda s: by_source[s][-1][1], reverse=True)[:MAX_SOURCES]
    chosen: dict[int, tuple[str, datetime]] = {}
    for source in latest_sources:
        rows = by_source[source]
        step = max(1, len(rows) // CHART_POINTS)
        picks = rows[::step]
        if picks[-1] != rows[-1]:
            picks.append(rows[-1])
        for pk, at in picks:
            chosen[pk] = (source, at)
    values = dict(MetricSnapshot.objects.filter(id__in=list(chosen)).values_list("id", "values"))
    out: dict[str, list[tuple[datetime, dict[str, float]]]] = {}
    for pk, (source, at) in sorted(chosen.items(), key=lambda item: item[1][1]):
        out.setdefault(source, []).append((at, values.get(pk) or {}))
    return out


def rate_series(
    points: dict[str, list[tuple[datetime, dict[str, float]]]], start: datetime, end: datetime, pick: Any
) -> list[dict[str, Any]]:
    """Per chart bucket, sum over sources of pick(deltas)/seconds between consecutive snapshots."""
    width = (end - start) / CHART_POINTS
    buckets: list[float] = [0.0] * CHART_POINTS
    seen: list[bool] = [False] * CHART_POINTS
    for rows in points.values():
        for (a_at, a), (b_at, b) in zip(rows, rows[1:], strict=False):
            seconds = (b_at - a_at).total_seconds()
            if seconds <= 0:
                continue
            slot = min(CHART_POINTS - 1, int((b_at - start) / width))
            buckets[slot] += pick(series.counter_deltas(a, b)) / seconds
            seen[slot] = True
    return [
        {"t": (start + width * (i + 1)).isoformat(), "v": round(v, 3) if seen[i] else None}
        for i, v in enumerate(buckets)
    ]


def latency_table(deltas: dict[str, float], name: str, label: str, **where: str) -> list[dict[str, Any]]:
    rows = []
    for value in series.histogram_label_values(deltas, name, label, **where):
        q = series.histogram_quantiles(deltas, name, QUANTILES, **{label: value, **where})
        count = sum(
            v
            for k, v in deltas.items()
            if series.key_parse(k)[0] == f"{name}_count"
            and series.key_parse(k)[1].get(label) == value
            and all(series.key_parse(k)[1].get(a) == b for a, b in where.items())
        )
        if count <= 0:  # a label seen before the window and not in it: no stale row
            continue
        rows.append(
            {
                label: value,
                "count": int(count),
                **{
                    f"p{int(qq * 100)}_ms": (round(v * 1000, 3) if v is not None else None)
                    for qq, v in q.items()
                },
            }
        )
    return rows


def traffic_totals(start: datetime, end: datetime) -> dict[str, Any]:
    rows = list(
        TrafficMinute.objects.filter(minute__gte=start, minute__lte=end)
        .values("metric", "label")
        .annotate(n=Sum("count"))
        .order_by("metric", "label")
    )
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        totals.setdefault(row["metric"], {})[row["label"]] = int(row["n"] or 0)
    return totals


def traffic_series(
    *, start: datetime, end: datetime, metric: str, points: int = CHART_POINTS
) -> dict[str, Any]:
    """Counts of ``metric`` by label in ``points`` buckets of the window (one grouped query)."""
    rows = (
        TrafficMinute.objects.filter(metric=metric, minute__gte=start, minute__lte=end)
        .values_list("minute", "label")
        .annotate(n=Sum("count"))
        .order_by("minute")
    )
    width = (end - start) / points
    labels: dict[str, list[int]] = {}
    for minute, label, n in rows:
        slot = min(points - 1, max(0, int((minute - start) / width)))
        labels.setdefault(label, [0] * points)[slot] += int(n or 0)
    return {"t": [(start + width * (i + 1)).isoformat() for i in range(points)], "series": labels}


@dataclass(frozen=True, slots=True)
class WindowDeltas:
    """What the snapshots of one window say: per-source points, the summed counter increases over the
    window, the seconds they cover and the latest snapshot (at, values)."""

    start: datetime
    points: dict[str, list[tuple[datetime, dict[str, float]]]]
    deltas: dict[str, float]
    seconds: float
    latest: tuple[datetime, dict[str, float]] | None


def window_deltas(*, window: str = "hour", now: datetime | None = None) -> WindowDeltas:
    """Counter increases over the last hour or day from the snapshots (two queries)."""
    now = now or timezone.now()
    start = now - WINDOWS.get(window, WINDOWS["hour"])
    points = snapshots_in(start, now)
    deltas = series.deltas_sum(
        series.counter_deltas(rows[0][1], rows[-1][1]) for rows in points.values() if rows
    )
    seconds = max(
        (
            max((rows[-1][0] - rows[0][0]).total_seconds() for rows in points.values() if rows)
            if points
            else 0.0
        ),
        0.0,
    )
    latest = max((rows[-1] for rows in points.values() if rows), key=lambda r: r[0], default=None)
    return WindowDeltas(start=start, points=points, deltas=deltas, seconds=seconds, latest=latest)
