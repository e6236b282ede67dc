"""Rate limits of the anonymous endpoints: per client address (truncated) and per visitor.

Every endpoint anyone can call without an account (``/collect``, ``/c/<token>``, ``/i/<token>`` and the
site's pages, each of which makes an ad decision) is wrapped in ``rate_limited(scope)``. A request is
counted against two fixed windows of ``RATE_LIMITS["PERIOD_S"]`` seconds: its truncated address (IPv4
/24, IPv6 /48, as tracking stores it) and, when it carries one, its identity cookie. Over either limit it
is answered ``429`` with ``Retry-After`` (seconds to the window's end) and counted in
``http_rate_limited_total{scope, key}`` on ``/metrics``; the view does not run, so a flood writes
nothing. The counting is ``inference.rest.throttling.window_hit`` (Redis in services mode, in-process in
embedded mode): the one limiter of the site, exported as ``inference.api.window_hit`` for any other
bound (e.g. per-client quarantine growth).

Limits (``RATE_LIMITS["SCOPES"]``: scope -> (per address, per visitor) per period) are generous for a
person and tight for a script; a shared address (an office behind one NAT) gets the larger allowance.
``RATE_LIMITS["ENABLED"] = False`` (``ADSITE_RATE_LIMITS=0``) switches them off, e.g. for load benchmarks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import Counter

from inference.api import window_hit
from tracking.identity import visitor_id_from_cookie
from tracking.network import client_ip_truncated

RATE_LIMITED_TOTAL = Counter(
    "http_rate_limited_total",
    "Anonymous requests refused with 429, by endpoint scope (collect, click, impression, page) and by "
    "which limit refused them (ip: the truncated client address; visitor: the identity cookie).",
    ["scope", "key"],
)

DEFAULT_SCOPES: dict[str, tuple[int, int]] = {
    "collect": (1200, 240),
    "click": (300, 30),
    "impression": (1200, 300),
    "page": (1200, 240),
}

_View = TypeVar("_View", bound=Callable[..., Any])


def _conf() -> dict[str, Any]:
    return getattr(settings, "RATE_LIMITS", {}) or {}


def rate_limit_check(request: HttpRequest, *, scope: str) -> float:
    """Count this request in ``scope``'s windows; the seconds to wait when it is over a limit, else 0."""
    conf = _conf()
    if not conf.get("ENABLED", True):
        return 0.0
    per_ip, per_visitor = {**DEFAULT_SCOPES, **conf.get("SCOPES", {})}[scope]
    period = float(conf.get("PERIOD_S", 60))
    ip = client_ip_truncated(request) or "-"
    wait = window_hit(f"{scope}:ip:{ip}", limit=per_ip, period_s=period)
    if wait:
        RATE_LIMITED_TOTAL.labels(scope, "ip").inc()
        return wait
    visitor = visitor_id_from_cookie(request)
    if visitor:
        wait = window_hit(f"{scope}:v:{visitor}", limit=per_visitor, period_s=period)
        if wait:
            RATE_LIMITED_TOTAL.labels(scope, "visitor").inc()
            return wait
    return 0.0


def too_many_requests(wait_s: float) -> HttpResponse:
    """The 429 answer: JSON like the API's errors, with ``Retry-After`` in whole seconds."""
    response = JsonResponse(
        {"error": "rate_limited", "detail": f"too many requests; retry after {math.ceil(wait_s)} s"}, status=429
    )
    response["Retry-After"] = str(max(1, math.ceil(wait_s)))
    return response


def rate_limited(scope: str, *, on_refused: Callable[[HttpRequest], None] | None = None) -> Callable[[_View], _View]:
    """Wrap a view (function, or a class-based view's ``as_view()``) in ``scope``'s limits.

    ``on_refused(request)`` runs for each refused request (the ads app counts refused clicks and
    impressions as invalid traffic, reason ``rate``); it must be cheap and never raise.
    """
    if scope not in DEFAULT_SCOPES:
        raise ValueError(f"unknown rate limit scope {scope!r}")

    def decorate(view: _View) -> _View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            wait = rate_limit_check(request, scope=scope)
            if wait:
                if on_refused is not None:
                    on_refused(request)
                return too_many_requests(wait)
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate
