"""Prometheus metrics of the HTTP layer (multiprocess-correct like ``inference.serving.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

HTTP_REQUESTS_TOTAL = Counter(
    "http_requests_total",
    "HTTP requests answered, by route (the URL pattern's view name; 'other' when none matched, e.g. "
    "static files and 404s) and status class.",
    ["route", "status"],
)
