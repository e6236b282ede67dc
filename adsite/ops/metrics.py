"""Prometheus metrics of the HTTP layer (multiprocess-correct like ``inference.serving.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
