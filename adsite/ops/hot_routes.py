"""The server's hot routes: ``GET /api/v1/users/{user_id}/interests`` and ``POST /api/v1/ads/decisions``
answered before Django's handler.

The interests hot path (``inference.rest.hot``) already skips DRF's dispatch for a client whose token this
process remembers; what it still paid per request was Django's: the WSGI environ, the request object, URL
resolution and the eleven middleware, about as much CPU as the answer itself (docs/benchmarks.md). The granian
worker (``adsite.rsgi``) asks ``HotRoutes.answer`` first; it returns the response, or None and Django answers
as before. It answers only when Django's middleware would do nothing but add headers:

- ``GET`` on exactly that path, no body, no cookie (a session or CSRF cookie is Django's business);
- a ``Host`` that ``ALLOWED_HOSTS`` accepts (else Django's 400), no ``X-Forwarded-Host`` when
  ``USE_X_FORWARDED_HOST`` is set, and no HTTPS redirect due (``SECURE_SSL_REDIRECT``);
- ``inference.api.interests_hot_route`` found a remembered token, valid parameters and the client under its
  rate. A client over its rate is handed to Django with the verdict in the environ, so the 429 is DRF's own
  and the hit is counted once;
- for a decision: ``POST`` on exactly that path with a JSON body, no ``Accept`` or one plain JSON satisfies,
  and ``adsite.ads.hot.decisions_answer`` found a remembered token, a body the published schema accepts, no
  ``explain``, known placements and the client under its rate (over it: handed to Django as above) (``tests/ads/test_decisions_hot_route.py`` compares the two stacks).

The response carries what Django's stack gives the same answer (``Content-Type``, ``Server-Timing``, ``Allow``,
``Content-Length``, and the security headers of ``SecurityMiddleware`` and ``XFrameOptionsMiddleware``, built
once from the settings; ``tests/api/test_interests_hot_route.py`` compares the two), and it is counted in
``http_requests_total`` and ``http_request_seconds`` under the route's name, as the outermost middleware counts.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.http import QueryDict
from django.http.request import split_domain_port, validate_host

from adsite.ops.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS_TOTAL

__all__ = ["HotRoutes"]

_INTERESTS = re.compile(r"/api/v1/users/([^/]+)/interests")
ROUTE = "user-interests"  # the URL pattern's name (inference/urls.py): the metrics' route label
DECISIONS_PATH = "/api/v1/ads/decisions"
DECISIONS_ROUTE = "ads-decisions"  # its URL pattern's name (adsite/ads/urls.py)
_INTERNAL_ERROR = b'{"errors":{"detail":"internal server error"}}'
_PLAIN_JSON = frozenset({"*/*", "application/json", "application/*"})  # Accept values DRF answers with plain JSON

logger = logging.getLogger(__name__)


class HotRoutes:
    """Built once per worker, after Django's settings are loaded."""

    def __init__(self) -> None:
        from adsite.ads.hot import decisions_answer
        from inference.api import interests_hot_route

        self._interests = interests_hot_route()
        self._allow = "GET, HEAD, OPTIONS"  # UserInterestsView.allowed_methods
        self._decisions = decisions_answer
        self._decisions_allow = "POST, OPTIONS"  # DecisionsView.allowed_methods
        self._allowed_hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not self._allowed_hosts:  # as HttpRequest.get_host allows in DEBUG
            self._allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
        self._forwarded_host = bool(getattr(settings, "USE_X_FORWARDED_HOST", False))
        self._ssl_redirect = bool(getattr(settings, "SECURE_SSL_REDIRECT", False))
        self._proxy_ssl = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        # SecurityMiddleware's and XFrameOptionsMiddleware's headers for this response, in the order Django's
        # handler sends them (the middleware run innermost first on the way out)
        static: list[tuple[str, str]] = []
        if getattr(settings, "SECURE_CONTENT_TYPE_NOSNIFF", True):
            static.append(("X-Content-Type-Options", "nosniff"))
        referrer = getattr(settings, "SECURE_REFERRER_POLICY", "same-origin")
        if referrer:
            value = referrer if isinstance(referrer, str) else ",".join(referrer)
            static.append(("Referrer-Policy", ",".join(v.strip() for v in value.split(","))))
        coop = getattr(settings, "SECURE_CROSS_ORIGIN_OPENER_POLICY", "same-origin")
        if coop:
            static.append(("Cross-Origin-Opener-Policy", coop))
        static.append(("X-Frame-Options", str(getattr(settings, "X_FRAME_OPTIONS", "DENY")).upper()))
        self._static = static
        hsts_seconds = int(getattr(settings, "SECURE_HSTS_SECONDS", 0) or 0)
        self._hsts: tuple[str, str] | None = None
        if hsts_seconds:
            hsts = f"max-age={hsts_seconds}"
            if getattr(settings, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False):
                hsts += "; includeSubDomains"
            if getattr(settings, "SECURE_HSTS_PRELOAD", False):
                hsts += "; preload"
            self._hsts = ("Strict-Transport-Security", hsts)

    def _secure(self, scope: Any) -> bool:
        if self._proxy_ssl:
            header, secure_value = self._proxy_ssl
            name = header.removeprefix("HTTP_").replace("_", "-").lower()
            value = scope.headers.get(name)
            if value is not None:
                return str(value).split(",", 1)[0].strip() == secure_value
        return bool(scope.scheme == "https")

    def answer(self, scope: Any, body: bytes, environ_extra: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """The response, or None for Django (module docstring). ``environ_extra`` receives what Django
        must know of a request this route began (the throttle's verdict)."""
        if scope.method == "GET" and not body:
            match = _INTERESTS.fullmatch(scope.path)
            if match is None:
                return None
            route = ROUTE
        elif scope.method == "POST" and scope.path == DECISIONS_PATH:
            match, route = None, DECISIONS_ROUTE
        else:
            return None
        started = time.perf_counter()
        secure = self._admitted(scope)
        if secure is None:
            return None
        if match is not None:
            answered = self._interests_answer(scope, match.group(1), environ_extra)
        else:
            answered = self._decisions_answer(scope, body, secure, environ_extra)
        if answered is None:
            return None
        status, first, payload = answered
        out = [*first, *self._static, ("Content-Length", str(len(payload)))]
        if secure and self._hsts is not None:
            out.insert(len(first), self._hsts)
        HTTP_REQUESTS_TOTAL.labels(route, "2xx" if status == 200 else "5xx").inc()
        HTTP_REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
        return status, out, payload

    def _admitted(self, scope: Any) -> bool | None:
        """Whether the request came over HTTPS, or None when Django's middleware would do more than add
        headers (a cookie, a forwarded or unknown host, an HTTPS redirect due)."""
        headers = scope.headers
        if headers.get("cookie") is not None or (self._forwarded_host and headers.get("x-forwarded-host") is not None):
            return None
        domain, _port = split_domain_port(headers.get("host") or "")
        if not domain or not validate_host(domain, self._allowed_hosts):
            return None
        secure = self._secure(scope)
        if self._ssl_redirect and not secure:
            return None
        return secure

    def _interests_answer(
        self, scope: Any, user_id: str, environ_extra: dict[str, Any]
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        query = scope.query_string
        top = QueryDict(query).getlist("top") if query else []
        answered = self._interests(scope.headers.get("authorization") or "", user_id, top, environ_extra)
        if answered is None:
            return None
        payload, timing = answered
        return 200, [("Content-Type", "application/json"), ("Server-Timing", timing), ("Allow", self._allow)], payload

    def _decisions_answer(
        self, scope: Any, body: bytes, secure: bool, environ_extra: dict[str, Any]
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        headers = scope.headers
        content_type = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        accept = headers.get("accept")
        if content_type != "application/json" or (accept is not None and accept.strip() not in _PLAIN_JSON):
            return None  # DRF's parser and content negotiation answer those (an indent asked for, say)
        origin = f"{'https' if secure else 'http'}://{headers.get('host') or ''}"
        try:
            decided = self._decisions(
                headers.get("authorization") or "", body,
                origin=origin, page=origin + DECISIONS_PATH,
                environ=environ_extra,
            )
        except Exception:  # as Django's stack answers an unexpected error under /api/ (api_errors.py)
            logger.exception("adsite.hot_route_failed %s", DECISIONS_PATH)
            return 500, [("Content-Type", "application/json")], _INTERNAL_ERROR
        finally:
            # what Django's request signals do at each request's end: a connection a sampled explanation
            # used is closed when unusable or past CONN_MAX_AGE, never kept broken after a database restart
            close_old_connections()
        if decided is None:
            return None
        return 200, [("Content-Type", "application/json"), ("Vary", "Accept"), ("Allow", self._decisions_allow)], decided
