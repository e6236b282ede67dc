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

Redis Cluster (the scale-out mode: ``settings.REDIS_CLUSTER``, ``REDIS_URL`` naming any node): the same
factory returns redis-py's ``RedisCluster`` over the same ``GuardedConnection``s, with the same timeouts and
no retries of its own on a connection error or a timeout (the caller degrades, as on one Redis; the client
reloads the slot map from the other nodes, so the next call after a failover reaches the new master). A
``MOVED``/``ASK`` redirect (a slot migrated, a replica promoted) is followed inside the client and never
reaches a caller. The caller sees the ``redis.Redis`` interface; what differs on a cluster (a script's
keys in one slot, no cross-slot ``MULTI``) is the key layout's concern (docs/scaling.md, "Where each Redis
key lives"). ``cluster_nodes`` lists the nodes for ``/readyz``.

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
from typing import Any, cast

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import Connection, ConnectionPool
from redis.exceptions import RedisClusterException
from redis.retry import Retry

logger = logging.getLogger(__name__)

COOLDOWN_S = 5.0

_down_until: dict[tuple[str, int], float] = {}
_lock = threading.Lock()

TIMEOUTS = {"request": 0.25, "write": 2.0, "probe": 0.5, "flush": 30.0}

_clients: dict[tuple[str, float, bool, bool], redis.Redis] = {}


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


def cluster_mode() -> bool:
    """Whether the site's Redis is a Redis Cluster (``settings.REDIS_CLUSTER``, the scale-out mode)."""
    from django.conf import settings

    return bool(getattr(settings, "REDIS_CLUSTER", False))


def redis_client(
    url: str,
    *,
    timeout: str | float = "request",
    decode_responses: bool = False,
    cluster: bool | None = None,
) -> redis.Redis:
    """This process's guarded client for ``url`` (see the module docstring): socket and connect timeouts
    of ``TIMEOUTS[timeout]`` (or ``timeout`` seconds), no retries, no health-check round trips.
    ``cluster`` (default: ``settings.REDIS_CLUSTER``): a ``RedisCluster`` reached through the node ``url``."""
    seconds = float(TIMEOUTS[timeout] if isinstance(timeout, str) else timeout)
    cluster = cluster_mode() if cluster is None else cluster
    key = (url, seconds, decode_responses, cluster)
    client = _clients.get(key)
    if client is None:
        options: dict[str, Any] = {
            "socket_timeout": seconds,
            "socket_connect_timeout": seconds,
            "retry": Retry(NoBackoff(), 0),
            "retry_on_timeout": False,
            "decode_responses": decode_responses,
            "connection_class": GuardedConnection,
        }
        # made outside ``_lock``: a RedisCluster connects while it is made, and a failed connection takes
        # ``_lock`` to mark its server down
        if cluster:
            # the same commands as redis.Redis (its command mixins); typed as one for the callers
            try:
                made = cast(redis.Redis, _GuardedCluster.from_url(url, **options))
            except RedisClusterException as exc:  # no node reachable: an outage, as on one Redis
                raise redis.ConnectionError(f"Redis Cluster at {url} unreachable: {exc}") from exc
        else:
            made = redis.Redis.from_url(url, health_check_interval=0, **options)
        with _lock:
            client = _clients.setdefault(key, made)
    return client


class _GuardedCluster(RedisCluster):
    """``RedisCluster`` whose cluster-level failures (``SlotNotCoveredError`` while a failover is under way,
    no node reachable...) are ``redis.ConnectionError``: redis-py raises them as a plain ``Exception``
    (``RedisClusterException``), which every caller's ``except redis.RedisError`` (the degraded path)
    would let through as a 5xx."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise redis.ConnectionError(f"Redis Cluster: {exc}") from exc


def cluster_nodes(client: redis.Redis) -> list[dict[str, Any]]:
    """The cluster's nodes as ``{"node": "host:port", "role": "master"|"replica"}`` (``[]``: one Redis)."""
    if not isinstance(client, RedisCluster):
        return []
    nodes = []
    for address, info in client.cluster_nodes().items():
        flags = str(info.get("flags", ""))
        role = "master" if "master" in flags else "replica" if "slave" in flags else flags
        if "fail" in flags and "fail?" not in flags:
            role += " (failed)"
        nodes.append({"node": address.split("@")[0], "role": role})
    return sorted(nodes, key=lambda node: node["node"])


def server_down(client: redis.Redis) -> bool:
    """Whether ``client``'s server is marked down (a call would fail at once); on a cluster, whether
    every master it knows is (one shard down still leaves the others answering)."""
    if isinstance(client, RedisCluster):
        masters = client.get_primaries()
        return bool(masters) and all(server_down_remaining(node.host, node.port) > 0 for node in masters)
    kwargs = client.connection_pool.connection_kwargs
    return server_down_remaining(str(kwargs.get("host", "")), int(kwargs.get("port", 6379))) > 0


class ClusterRedisCache(RedisCache):
    """Django's Redis cache on a Redis Cluster (the scale-out mode's ``CACHES``), through ``redis_client``:
    the same guard and the ``"request"`` timeout as every other client; multi-key calls split per slot."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ClusterCacheClient


class _ClusterCacheClient(RedisCacheClient):
    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        self._url = servers[0]

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        return redis_client(self._url, timeout="request", cluster=True)

    def get_many(self, keys: Any) -> dict[Any, Any]:
        keys = list(keys)
        values = self.get_client().mget_nonatomic(keys)
        return {k: self._serializer.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def set_many(self, data: dict[Any, Any], timeout: int | None) -> None:
        pipe = self.get_client(write=True).pipeline(transaction=False)
        for key, value in data.items():
            pipe.set(key, self._serializer.dumps(value), ex=timeout)
        pipe.execute()

    def clear(self) -> bool:
        return bool(self.get_client(write=True).flushdb(target_nodes=RedisCluster.PRIMARIES))
