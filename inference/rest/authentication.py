"""Token authentication for service clients without a database query on every request.

DRF's ``TokenAuthentication`` looks the token up in the database on each call (about 1 ms of a ~4 ms
interests request here, measured in docs/benchmarks.md). This subclass remembers a token that was valid
for ``TOKEN_CACHE_SECONDS`` per process, so a busy client costs one query per process per period. The
price: a deleted token, or a deactivated user, keeps working for at most that long in each web process.
Invalid tokens are never remembered (each one is checked against the database).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rest_framework.authentication import TokenAuthentication

TOKEN_CACHE_SECONDS = 10.0
TOKEN_CACHE_MAX = 10_000  # distinct tokens held per process before the memory is cleared


class CachedTokenAuthentication(TokenAuthentication):
    _valid: dict[str, tuple[float, Any, Any]] = {}
    _lock = threading.Lock()

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        now = time.monotonic()
        hit = self._valid.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        user, token = super().authenticate_credentials(key)  # raises AuthenticationFailed when invalid
        with self._lock:
            if len(self._valid) >= TOKEN_CACHE_MAX:
                self._valid.clear()
            self._valid[key] = (now + TOKEN_CACHE_SECONDS, user, token)
        return user, token


def token_cache_clear() -> None:
    """Forget every remembered token in this process (tests; after revoking a token at once)."""
    with CachedTokenAuthentication._lock:
        CachedTokenAuthentication._valid.clear()
