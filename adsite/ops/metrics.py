"""Prometheus metrics of the HTTP layer (multiprocess-correct like ``inference.serving.metrics``), and the
registry every reader of the processes' metrics uses (``metrics_registry``: ``/metrics``, the dashboard's
snapshots)."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

HTTP_REQUESTS_TOTAL = Counter(
    "http_requests_total",
    "HTTP requests answered, by route (the URL pattern's view name; 'other' when none matched, e.g. "
    "static files and 404s) and status class.",
    ["route", "status"],
)

HTTP_CONNECTIONS_BALANCED = Counter(
    "http_connections_balanced",
    "Keep-alive connections a web process closed after an answer because it held more than its share of "
    "the clients' connections (adsite/ops/connection_balance.py); their clients reconnect.",
)

HTTP_REQUESTS_SHED = Counter(
    "http_requests_shed",
    "Requests a web process answered 503 'overloaded' at once, because it already held "
    "ADSITE_SERVER['MAX_IN_FLIGHT'] requests (adsite/rsgi.py): the site past its knee.",
)

# from 0.5 ms (a bare view) to 2.5 s; 10 ms (the ad decision budget) and 5 ms (the interests bar) are bounds, so
# "p99 within budget" reads exactly off the buckets
HTTP_SECONDS_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)
HTTP_REQUEST_SECONDS = Histogram(
    "http_request_seconds",
    "Time from the request reaching the site's middleware to its response, by route (as http_requests_total): "
    "the server-side latency, without the wait for a free worker.",
    ["route"],
    buckets=HTTP_SECONDS_BUCKETS,
)


class TolerantMultiProcessCollector(MultiProcessCollector):
    """prometheus_client's multiprocess collector, passing over a process's file it cannot read instead of
    failing the whole read. A process's file exists empty for an instant after the process creates it
    (``MmapedDict`` creates the file, then sizes it), and stays empty if the process is killed in that
    instant (prometheus/client_python#1199, open): one such file made every read of every metric raise, so
    ``/metrics`` and a dashboard page (which takes a snapshot when the last is stale) answered 500 while it
    lay there (the likely cause of a fault-battery failure: docs/reliability.md). Every file is read as
    before; only when that fails are the files read one by one and the unreadable ones left out (logged once
    each)."""

    _unreadable_logged: set[str] = set()

    def collect(self) -> Iterable[Any]:
        files = glob.glob(os.path.join(self._path, "*.db"))
        try:
            return self.merge(files, accumulate=True)
        except Exception:  # whatever a half-written file makes the reader raise
            readable = [name for name in files if _readable(name)]
            for name in sorted(set(files) - set(readable) - self._unreadable_logged):
                self._unreadable_logged.add(name)
                logger.warning("metrics.file_unreadable %s (left out: empty or half-written)", os.path.basename(name))
            return self.merge(readable, accumulate=True)


def _readable(name: str) -> bool:
    try:
        for _value in MmapedDict.read_all_values_from_file(name):
            pass
        return True
    except Exception:
        return False


def metrics_registry() -> CollectorRegistry:
    """The registry to read this server's metrics from: every process's files in multiprocess mode
    (``PROMETHEUS_MULTIPROC_DIR``), this process's own registry otherwise."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    TolerantMultiProcessCollector(registry)
    return registry
