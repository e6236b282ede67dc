"""Rate limits of the inference API, per authenticated client (rates in REST_FRAMEWORK settings).

DRF's stock throttles keep each client's full request history (a list of timestamps, up to the rate's
count) in Django's cache: a pickled list read and written on every request — at 120,000/minute that is
hundreds of kB per call for a busy client — and Django's Redis cache backend builds a new client object
per call. These throttles count instead: a fixed window per client (``rate`` requests per period,
windows aligned to the period) in Redis with a script doing ``INCRBY`` and, on the window's first hit,
``PEXPIRE``, on one connection pool per process; a busy client's hits are sent in batches of up to 1%
of its limit (``RedisWindowCounter``), so most requests make no round trip at all for the throttle.

The price of a fixed window: a client can make up to twice the rate across a window boundary.

Degradation: when Redis is not configured (embedded mode) or does not answer within
``REDIS_TIMEOUT_S``, the window is counted in this process instead (limits then hold per web process,
i.e. looser by the number of workers), and Redis is left alone while the client guard marks it down
(``inference/redis_clients.py``, the one fail-fast rule of every Redis client), so that a dead Redis costs
one timeout per process per cooldown, not one per request. A throttle never fails a
request with a 5xx.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import UserRateThrottle

from inference.backends import backends
from inference.redis_clients import redis_client, server_down

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 0.1
LOCAL_KEYS_MAX = 100_000  # windows counted in-process before old ones are dropped

SYNC_MAX = 100  # hits a process may hold back before sending them to Redis
SYNC_S = 0.1  # ... or seconds

# KEYS[1] = the window's counter; ARGV[1] = its lifetime in ms, ARGV[2] = hits to add. Returns the total.
_HIT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if n == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class LocalWindowCounter:
    """Per-process window counts (embedded mode, and the fallback while Redis is away)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, expires_at: float, cost: int = 1) -> int:
        with self._lock:
            now = time.time()
            if len(self._counts) >= LOCAL_KEYS_MAX:
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
                if len(self._counts) >= LOCAL_KEYS_MAX:
                    self._counts.clear()
            _, count = self._counts.get(key, (expires_at, 0))
            self._counts[key] = (expires_at, count + cost)
            return count + cost

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


class _Pending:
    """This process's view of one window: the total Redis last reported, and hits not yet sent."""

    __slots__ = ("known", "pending", "synced", "expires_at")

    def __init__(self, expires_at: float) -> None:
        self.known = 0
        self.pending = 0
        self.synced = 0.0
        self.expires_at = expires_at


class RedisWindowCounter:
    """Window counts in Redis, shared by every web process; one client (connection pool) per process.

    Hits are sent in small batches (``INCRBY`` of the hits since the last send): every
    ``sync_every(limit)`` hits (1% of the limit, at most ``SYNC_MAX``), after ``SYNC_S`` seconds, and
    whenever this process's estimate (last total + its unsent hits) reaches the limit — so a busy client
    costs one round trip per ~100 requests, a client at its limit is judged on Redis's exact total, and
    a limit can be passed by at most the unsent hits of the *other* processes (under 1% of it each).
    A low limit (under 200) is sent on every hit: exact.
    """

    def __init__(self, url: str, *, timeout_s: float = REDIS_TIMEOUT_S) -> None:
        self.url = url

        self._client = redis_client(url, timeout=timeout_s)
        self._script: Any = self._client.register_script(_HIT)  # EVALSHA; loads the script when missing
        self._windows: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    @staticmethod
    def sync_every(limit: int) -> int:
        return max(1, min(SYNC_MAX, limit // 100))

    def hit(self, key: str, *, limit: int, ttl_ms: int, expires_at: float, cost: int = 1) -> int | None:
        """The window's count including this hit of weight ``cost`` (an estimate below the limit), or None
        while Redis is away."""
        if server_down(self._client):  # the guard's mark: Redis failed a moment ago, count in-process
            return None
        now = time.monotonic()
        with self._lock:
            entry = self._windows.get(key)
            if entry is None:
                if len(self._windows) >= LOCAL_KEYS_MAX:
                    wall = time.time()
                    self._windows = {k: v for k, v in self._windows.items() if v.expires_at > wall}
                entry = self._windows[key] = _Pending(expires_at)
            entry.pending += cost
            estimate = entry.known + entry.pending
            if entry.pending < self.sync_every(limit) and now - entry.synced < SYNC_S and estimate < limit:
                return estimate
            send, entry.pending = entry.pending, 0
        try:
            total = int(self._script(keys=[key], args=[ttl_ms, send]))
        except redis.RedisError as exc:
            logger.warning("api.throttle_redis_unavailable: counting in-process while it is away (%s)", exc)
            return None
        with self._lock:
            entry.known = max(entry.known, total)
            entry.synced = now
            return total + entry.pending  # hits other threads added while this one was sending


# This process's counters live in ``inference.backends`` (``throttle_local``, ``throttle_redis``).


def redis_counter() -> RedisWindowCounter | None:
    """This process's Redis counter for ``settings.REDIS_URL`` (None in embedded mode)."""
    url = getattr(settings, "REDIS_URL", "") or ""
    if not url:
        return None
    state = backends()
    counter = state.throttle_redis
    if counter is None or counter.url != url:
        with state.throttle_lock:
            if state.throttle_redis is None or state.throttle_redis.url != url:
                try:
                    state.throttle_redis = RedisWindowCounter(url)
                except redis.RedisError as exc:
                    # a Redis Cluster's client connects while it is made (it reads the slot map): with no
                    # node answering, count in-process and try again on the next hit (the guard makes that
                    # attempt fail at once while the nodes are marked down)
                    logger.warning("api.throttle_redis_unavailable: counting in-process while it is away (%s)", exc)
                    return None
            counter = state.throttle_redis
    return counter


def throttle_counters_reset() -> None:
    """Forget this process's Redis counter and in-process counts (tests)."""
    state = backends()
    with state.throttle_lock:
        state.throttle_redis = None
    state.throttle_local.clear()


class FixedWindowUserRateThrottle(UserRateThrottle):
    """``UserRateThrottle``'s identity and rates, counted in fixed windows (see the module docstring)."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        window_key = f"{key}:{window}"
        counter = redis_counter()
        count = None
        if counter is not None:
            count = counter.hit(
                window_key,
                limit=self.num_requests,
                ttl_ms=int(self.duration * 1000) + 1000,
                expires_at=self.window_ends,
            )
        if count is None:
            count = backends().throttle_local.hit(window_key, self.window_ends)
        return count <= self.num_requests

    def wait(self) -> float:
        return max(0.0, self.window_ends - self.now)


class InterestsRateThrottle(FixedWindowUserRateThrottle):
    scope = "interests"


class InterestsBatchRateThrottle(FixedWindowUserRateThrottle):
    scope = "interests_batch"


def window_hit(key: str, *, limit: int, period_s: float, now: float | None = None, cost: int = 1) -> float:
    """Count one hit of ``key`` (weighing ``cost``: a request, a stored row, a byte) in its fixed window of
    ``period_s`` seconds; the seconds to wait when the window's total is over ``limit`` (the window's
    remainder), else 0. The hit is counted either way, so a client that keeps trying stays refused.

    The one rate limiter of the site, for any caller that must bound what a client can make it do (the
    anonymous endpoints' limits in ``adsite.ops.ratelimit``, per-client quarantine growth): counted in
    Redis when ``REDIS_URL`` is set, in this process otherwise or while Redis does not answer (see the
    module docstring for the batching and the degradation).
    """
    now = time.time() if now is None else now
    window = int(now // period_s)
    ends = (window + 1) * period_s
    window_key = f"rl:{key}:{window}"
    counter = redis_counter()
    count = None
    if counter is not None:
        count = counter.hit(window_key, limit=limit, ttl_ms=int(period_s * 1000) + 1000, expires_at=ends, cost=cost)
    if count is None:
        count = backends().throttle_local.hit(window_key, ends, cost)
    return 0.0 if count <= limit else max(ends - now, 0.001)
