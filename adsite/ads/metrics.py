"""Prometheus series of ad decisions (what the staff dashboard's overview and ads page read).

Multiprocess-correct like ``inference.serving.metrics`` (counters and histograms only). Promises:
one ``decision_observe`` per ``ads_select`` call, a few label lookups and no I/O; label values are
bounded (placement names known to the catalog, tiers, campaign ids of the catalog, a fixed set of
filter reasons).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Histogram

# the decision budget is 10 ms
DECISION_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 1.0)

DECISIONS_TOTAL = Counter(
    "ads_decisions_total", "Ad decisions (one per page or API call), by how the interests were answered.", ["served_by"]
)
DECISION_SECONDS = Histogram(
    "ads_decision_seconds",
    "Whole-decision latency (prediction included), by how many placements the decision filled.",
    ["placement"],
    buckets=DECISION_BUCKETS,
)
IMPRESSIONS_SERVED_TOTAL = Counter(
    "ads_impressions_served_total", "Placements filled, by tier (builtin: the site's own house ad).", ["tier"]
)
PLACEMENT_FILLED_TOTAL = Counter(
    "ads_placement_filled_total",
    "Placements asked for, by placement and what filled it (a campaign's tier; builtin: the site's own ad).",
    ["placement", "tier"],
)
CAMPAIGN_FILTERED_TOTAL = Counter(
    "ads_campaign_filtered_total",
    "Decisions in which a campaign sat out because of a cap, pacing or its budget.",
    ["campaign", "reason"],
)
# the filter reasons worth counting per campaign (targeting and dates are not "delivery problems")
COUNTED_REASONS = frozenset({"capped", "paced", "out_of_budget"})


# (metric, label values) -> the labelled child: ``labels()`` checks and locks on every call, and a decision
# counts one series per campaign that sat out (~40 on the demo site when pacing holds most back); the label
# values are bounded (module docstring), so the children are kept. Each child notices a fork by itself.
_CHILDREN: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    key = (metric, *values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child


def _placements_label(n: int) -> str:
    return "none" if n == 0 else "1 placement" if n == 1 else f"{min(n, 4)}{'+' if n >= 4 else ''} placements"


def decision_observe(
    *,
    placements: Sequence[str],
    known_placements: Mapping[str, str],
    served_by: str,
    tiers: Sequence[str],
    filtered: Mapping[int, str],
    seconds: float,
    filled: Sequence[tuple[str, str]] = (),
) -> None:
    """Count one decision. ``tiers``: the tier of each filled placement ("builtin" for the site's own);
    ``filled``: (placement, tier) of each placement (the fill rate per placement)."""
    names = sorted({name if name in known_placements else "other" for name in placements})
    _child(DECISIONS_TOTAL, served_by).inc()
    # by how many placements the decision filled (a bounded label), not by their combination: pages
    # with the same number of slots cost alike, and the table keeps a few rows, not one per layout
    _child(DECISION_SECONDS, _placements_label(len(names))).observe(seconds)
    for tier in tiers:
        _child(IMPRESSIONS_SERVED_TOTAL, tier).inc()
    for placement, tier in filled:
        _child(PLACEMENT_FILLED_TOTAL, placement if placement in known_placements else "other", tier).inc()
    for campaign_id, reason in filtered.items():
        if reason in COUNTED_REASONS:
            _child(CAMPAIGN_FILTERED_TOTAL, str(campaign_id), reason).inc()
