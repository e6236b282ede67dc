"""The one way this project makes a Redis client: guarded, with a named timeout, no retries.

``redis_client(url, timeout=...)`` is every Redis client of the site (feature store, ad ledger, event
buffer, API throttles, readiness probe), one per (url, timeout, decoding) per process; Django's cache
uses the same guard through ``GuardedConnectionPool``. It lives in ``inference``, the lowest layer, so
that tracking and the site use it through ``inference.api`` without importing each other.

Timeouts, one policy (``TIMEOUTS``): ``"request"`` for a call on a request's path (the answer is
useless later: fail and degrade), ``"write"`` for a batch write, ``"probe"`` for the readiness probe,
``"flush"`` for the stream flush's blocking reads. A caller with a setting of its own (the feature
store's ``STORE_READ_TIMEOUT_S``) passes seconds instead.

Fail fast on a Redis that stopped answering: one timeout per process per cooldown, not one per request.
Every caller already degrades on a Redis error (the prior answers, house ads run, events go to the
database...). That is enough when Redis *refuses* connections: the error is immediate. A Redis that
*hangs* (a stopped process, a dead network path) costs each request the full timeout instead, on every
call, which with a few sync workers takes the whole site down.

``GuardedConnection`` remembers, per Redis server (host, port) and per process, that a connection or a
command to it failed (refused, reset or timed out); for ``COOLDOWN_S`` after that, any command to that
server raises ``redis.ConnectionError`` at once without touching the network. The first command after
the cooldown tries again (and clears the mark when it succeeds). A reply that is a Redis error
(``NOSCRIPT``, a wrong type...) is an answer, not an outage: it marks nothing. ``server_down_remaining``
lets a caller skip its own work while the server is marked (the API throttles count in-process then).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import Connection, ConnectionPool
from redis.retry import Retry

logger = logging.getLogger(__name__)

COOLDOWN_S = 5.0

_down_until: dict[tuple[str, int], float] = {}
_lock = threading.Lock()

TIMEOUTS = {"request": 0.25, "write": 2.0, "probe": 0.5, "flush": 30.0}

_clients: dict[tuple[str, float, bool], redis.Redis] = {}


def server_down_remaining(host: str, port: int) -> float:
    """Seconds left before ``host:port`` is tried again (0: it is not marked down)."""
    until = _down_until.get((host, port))
    return max(0.0, until - time.monotonic()) if until is not None else 0.0


def guard_reset() -> None:
    """Forget every mark and every cached client (tests)."""
    with _lock:
        _down_until.clear()
        _clients.clear()


class GuardedConnection(Connection):
    """A TCP connection that refuses at once while its server is marked down (see the module docstring)."""

    def _guard(self) -> None:
        until = _down_until.get((self.host, self.port))
        if until is not None and time.monotonic() < until:
            raise redis.ConnectionError(
                f"Redis at {self.host}:{self.port} did not answer a moment ago; "
                f"not tried again for {until - time.monotonic():.1f} s"
            )

    def _failed(self, error: Exception) -> None:
        key = (self.host, self.port)
        with _lock:
            first = key not in _down_until
            _down_until[key] = time.monotonic() + COOLDOWN_S
        if first:
            logger.warning(
                "redis.unavailable %s:%s (%s): failing fast for %.0f s at a time until it answers",
                self.host, self.port, error, COOLDOWN_S,
            )

    def connect(self) -> None:
        self._guard()
        try:
            super().connect()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._failed(exc)
            raise

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self._guard()
        try:
            super().send_packed_command(command, check_health=check_health)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._failed(exc)
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._failed(exc)
            raise
        if _down_until and (self.host, self.port) in _down_until:  # it answers again
            with _lock:
                if _down_until.pop((self.host, self.port), None) is not None:
                    logger.warning("redis.available %s:%s again", self.host, self.port)
        return response


class GuardedConnectionPool(ConnectionPool):
    """A pool of ``GuardedConnection`` (for Django's ``RedisCache``: ``OPTIONS["pool_class"]``)."""

    def __init__(self, connection_class: type[Connection] = GuardedConnection, **kwargs: Any) -> None:
        super().__init__(connection_class=connection_class, **kwargs)


def redis_client(url: str, *, timeout: str | float = "request", decode_responses: bool = False) -> redis.Redis:
    """This process's guarded client for ``url`` (see the module docstring): socket and connect timeouts
    of ``TIMEOUTS[timeout]`` (or ``timeout`` seconds), no retries, no health-check round trips."""
    seconds = float(TIMEOUTS[timeout] if isinstance(timeout, str) else timeout)
    key = (url, seconds, decode_responses)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = redis.Redis.from_url(
                    url,
                    socket_timeout=seconds,
                    socket_connect_timeout=seconds,
                    retry=Retry(NoBackoff(), 0),
                    retry_on_timeout=False,
                    health_check_interval=0,
                    decode_responses=decode_responses,
                    connection_class=GuardedConnection,
                )
    return client


def server_down(client: redis.Redis) -> bool:
    """Whether ``client``'s server is marked down (a call would fail at once)."""
    kwargs = client.connection_pool.connection_kwargs
    return server_down_remaining(str(kwargs.get("host", "")), int(kwargs.get("port", 6379))) > 0
