"""Prometheus series of ad decisions (what the staff dashboard's overview and ads page read).

Multiprocess-correct like ``inference.serving.metrics`` (counters and histograms only). Promises:
one ``decision_observe`` per ``ads_select`` call, a few label lookups and no I/O; label values are
bounded (placement names known to the catalog, tiers, campaign ids of the catalog, a fixed set of
filter reasons). The campaigns that sat out are added up in the process and written to their series by a
thread of the process every ``FILTERED_FLUSH_S`` (and at its exit): ``ads_campaign_filtered_total`` lags
by at most that.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
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


# A decision counts one series per campaign that sat out (~40 on the demo site when pacing holds most back), and
# each increment of a series in multiprocess mode takes a lock and writes to a memory-mapped file (~1 µs): ~40 µs,
# about 5% of a decision's CPU on the server. Added up here instead, they are written once a second.
FILTERED_FLUSH_S = 1.0


class _FilteredCounts:
    """(campaign, reason) -> decisions not yet written to ``CAMPAIGN_FILTERED_TOTAL``, in this process; a daemon
    thread writes them every ``FILTERED_FLUSH_S``, started with the process's first count (a forked child starts
    its own, without its parent's pending counts: those are the parent's to write)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._pid = 0  # the process whose thread writes the counts (0: none started)

    def add(self, keys: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="ads-metrics-flush", daemon=True).start()
            for key in keys:
                self._counts[key] = self._counts.get(key, 0) + 1

    def flush(self) -> None:
        """Write the pending counts to their series now."""
        with self._lock:
            counts, self._counts = self._counts, {}
        for (campaign, reason), n in counts.items():
            _child(CAMPAIGN_FILTERED_TOTAL, campaign, reason).inc(n)

    def forked(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent may have held it at the fork
        self._counts = {}

    def _run(self) -> None:
        while True:
            time.sleep(FILTERED_FLUSH_S)
            self.flush()


_FILTERED = _FilteredCounts()
os.register_at_fork(after_in_child=_FILTERED.forked)
atexit.register(_FILTERED.flush)  # a stopping process writes what it counted last


def decision_metrics_flush() -> None:
    """Write this process's pending per-campaign filter counts to ``ads_campaign_filtered_total`` now (they are
    otherwise written within ``FILTERED_FLUSH_S``)."""
    _FILTERED.flush()


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
    _FILTERED.add((str(campaign_id), reason) for campaign_id, reason in filtered.items() if reason in COUNTED_REASONS)
