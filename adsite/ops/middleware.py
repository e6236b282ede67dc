"""Counts and times every HTTP request the site answers (``http_requests_total``,
``http_request_seconds``), for the dashboard's requests per second and latency by route. Outermost in
``MIDDLEWARE`` so that requests answered by other middleware (static files, redirects, CSRF refusals)
count too, and the time covers every middleware and the view. The route label is the URL pattern's view
name, a bounded set, never the raw path. Cost: one counter increment and one histogram observation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from adsite.ops.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS_TOTAL

STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def _unrouted(path: str) -> str:
    """A request answered before URL resolution (static files by WhiteNoise, redirects): named by its
    kind, a bounded set, so the busiest "route" is not an anonymous "other"."""
    from django.conf import settings

    static = getattr(settings, "STATIC_URL", "/static/") or "/static/"
    if path.startswith(static if static.startswith("/") else f"/{static}"):
        return "static files"
    if path.startswith("/media/"):
        return "media files"
    return "unresolved"


def http_requests_counted(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    def middleware(request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        # Django turns a view's exception into a 500 response below this point, so it is counted too
        response = get_response(request)
        took = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        route = match.view_name if match is not None else _unrouted(request.path)
        HTTP_REQUESTS_TOTAL.labels(route, STATUS_CLASSES.get(response.status_code // 100, "other")).inc()
        HTTP_REQUEST_SECONDS.labels(route).observe(took)
        return response

    return middleware
