"""Counts every HTTP request the site answers (``http_requests_total``), for the dashboard's
requests per second. Outermost in ``MIDDLEWARE`` so that requests answered by other middleware
(static files, redirects, CSRF refusals) count too. The route label is the URL pattern's view name,
a bounded set, never the raw path. Cost: one labelled counter increment per request.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from adsite.ops.metrics import HTTP_REQUESTS_TOTAL

STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def http_requests_counted(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    def middleware(request: HttpRequest) -> HttpResponseBase:
        # Django turns a view's exception into a 500 response below this point, so it is counted too
        response = get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.view_name if match is not None else "other"
        HTTP_REQUESTS_TOTAL.labels(route, STATUS_CLASSES.get(response.status_code // 100, "other")).inc()
        return response

    return middleware
