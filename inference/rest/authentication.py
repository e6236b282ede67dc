"""Token authentication for service clients without a database query on every request.

DRF's ``TokenAuthentication`` looks the token up in the database on each call (about 1 ms of a ~4 ms
interests request here, measured in docs/benchmarks.md). This subclass remembers a token that was valid
for ``TOKEN_CACHE_SECONDS`` per process, so a busy client costs one query per process per period. The
price: a deleted token, or a deactivated user, keeps working for at most that long in each web process.
Invalid tokens are never remembered (each one is checked against the database).

While the database cannot be read, a token that was valid within ``TOKEN_STALE_GRACE_SECONDS`` keeps
working (a client of the API is not cut off by a database outage its request may not even need); any
other token is answered 503 ``{"error": "unavailable"}`` with ``Retry-After``, never a 500.

The key is accepted as ``Authorization: Token <key>`` (DRF's form) and as ``Authorization: Bearer <key>``
(what most HTTP clients and OpenAPI generators send); the schema lists both (``adsite/ops/openapi.py``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import DatabaseError
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.request import Request

TOKEN_CACHE_SECONDS = 10.0
TOKEN_STALE_GRACE_SECONDS = 3600.0  # a remembered token serves this long past its period while the database is down
TOKEN_CACHE_MAX = 10_000  # distinct tokens held per process before the memory is cleared
KEYWORDS = (b"token", b"bearer")  # the Authorization header's scheme, case-insensitive (RFC 9110)


class AuthenticationUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = "credentials cannot be checked now (the database is unavailable); retry shortly"
    default_code = "unavailable"
    wait = 5  # DRF's exception handler sends it as Retry-After


class CachedTokenAuthentication(TokenAuthentication):
    _valid: dict[str, tuple[float, Any, Any]] = {}
    _lock = threading.Lock()

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() not in KEYWORDS:
            return None  # another scheme (or none): the next authenticator's, or "not provided"
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid authorization header: expected 'Token <key>' or 'Bearer <key>'."
            )
        try:
            key = auth[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token: not ASCII.") from None
        return self.authenticate_credentials(key)

    def authenticate_header(self, request: Request) -> str:
        return 'Token realm="api", Bearer realm="api"'

    @classmethod
    def remembered(cls, header: str) -> tuple[Any, Any] | None:
        """(user, token) for an ``Authorization`` header whose token this process remembers as valid, else
        None (no header, another scheme, a malformed one, an unknown or expired key: ``authenticate``
        decides those). The interests hot path's authentication (``hot.py``)."""
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() not in ("token", "bearer") or not parts[1].isascii():
            return None
        hit = cls._valid.get(parts[1])
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[1], hit[2]

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        now = time.monotonic()
        hit = self._valid.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        try:
            user, token = super().authenticate_credentials(key)  # raises AuthenticationFailed when invalid
        except DatabaseError as exc:
            if hit is not None and hit[0] + TOKEN_STALE_GRACE_SECONDS > now:
                return hit[1], hit[2]  # valid a moment ago; the database cannot say otherwise now
            raise AuthenticationUnavailable() from exc
        with self._lock:
            if len(self._valid) >= TOKEN_CACHE_MAX:
                self._valid.clear()
            self._valid[key] = (now + TOKEN_CACHE_SECONDS, user, token)
        return user, token


def token_cache_clear() -> None:
    """Forget every remembered token in this process (tests; after revoking a token at once)."""
    with CachedTokenAuthentication._lock:
        CachedTokenAuthentication._valid.clear()
