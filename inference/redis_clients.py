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

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.backoff import NoBackoff
from redis.cluster import ClusterPipeline, RedisCluster
from redis.connection import Connection, ConnectionPool, Encoder
from redis.exceptions import (
    AskError,
    ClusterCrossSlotError,
    ClusterError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)
from redis.retry import Retry

from inference.backends import backends

logger = logging.getLogger(__name__)

COOLDOWN_S = 5.0

TIMEOUTS = {"request": 0.25, "write": 2.0, "probe": 0.5, "flush": 30.0}

# The clients and the marks are this process's (``inference.backends``: ``redis_clients``,
# ``redis_down_until``, ``redis_lock``).


def server_down_remaining(host: str, port: int) -> float:
    """Seconds left before ``host:port`` is tried again (0: it is not marked down)."""
    until = backends().redis_down_until.get((host, port))
    return max(0.0, until - time.monotonic()) if until is not None else 0.0


def guard_reset() -> None:
    """Forget every mark and every cached client of this process (tests)."""
    state = backends()
    with state.redis_lock:
        state.redis_down_until.clear()
        state.redis_clients.clear()


class GuardedConnection(Connection):
    """A TCP connection that refuses at once while its server is marked down (see the module docstring)."""

    def _guard(self) -> None:
        until = backends().redis_down_until.get((self.host, self.port))
        if until is not None and time.monotonic() < until:
            raise redis.ConnectionError(
                f"Redis at {self.host}:{self.port} did not answer a moment ago; "
                f"not tried again for {until - time.monotonic():.1f} s"
            )

    def _failed(self, error: Exception) -> None:
        key = (self.host, self.port)
        state = backends()
        with state.redis_lock:
            first = key not in state.redis_down_until
            state.redis_down_until[key] = time.monotonic() + COOLDOWN_S
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
        state = backends()
        down = state.redis_down_until
        if down and (self.host, self.port) in down:  # it answers again
            with state.redis_lock:
                if down.pop((self.host, self.port), None) is not None:
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
    state = backends()
    client = state.redis_clients.get(key)
    if client is None:
        options: dict[str, Any] = {
            "socket_timeout": seconds,
            "socket_connect_timeout": seconds,
            "retry": Retry(NoBackoff(), 0),
            "retry_on_timeout": False,
            "decode_responses": decode_responses,
            "connection_class": GuardedConnection,
        }
        # made outside ``redis_lock``: a RedisCluster connects while it is made, and a failed connection
        # takes ``redis_lock`` to mark its server down
        if cluster:
            # the same commands as redis.Redis (its command mixins); typed as one for the callers. Made
            # without touching the network, as a redis.Redis is: it reads the slot map on its first call
            made = cast(redis.Redis, _GuardedCluster(url, options))
        else:
            made = redis.Redis.from_url(url, health_check_interval=0, **options)
        with state.redis_lock:
            client = state.redis_clients.setdefault(key, made)
    return client


# What a Redis Cluster raises, besides a node's connection error or timeout, while a slot has no master
# (a failover under way), a slot moves, or no node answers: redis-py raises ``RedisClusterException`` (a plain
# ``Exception``: ``SlotNotCoveredError``, "cannot be connected") and, once its redirects are spent, the
# server's ``CLUSTERDOWN``/``MASTERDOWN``, ``TRYAGAIN``, ``MOVED``/``ASK``, ``READONLY`` (a write that reached
# a master just demoted) or ``CROSSSLOT``. For a caller each one means "Redis cannot answer this now": the
# guarded cluster client raises them as ``redis.ConnectionError``, the error every caller degrades on.
CLUSTER_FAULTS: tuple[type[Exception], ...] = (
    RedisClusterException,
    ClusterError,
    AskError,
    TryAgainError,
    ReadOnlyError,
    ClusterCrossSlotError,
)


# How often, at most, a client reloads the slot map after a failed call (see ``_slots_refresh``).
SLOTS_REFRESH_S = 1.0


def _slots_refresh(nodes_manager: Any) -> None:
    """Reload the cluster's slot map after a call failed on a node (at most every ``SLOTS_REFRESH_S``).

    With no retries, redis-py reloads the map after a failed single command but not always after a failed
    pipeline: a client that only pipelines (the feature store, the event buffer) kept sending a dead
    master's slots to it after its replica had taken them over. Failures to reload (no node answering yet)
    are the outage the caller already degrades on."""
    now = time.monotonic()
    if now - getattr(nodes_manager, "_adsite_refreshed_at", 0.0) < SLOTS_REFRESH_S:
        return
    nodes_manager._adsite_refreshed_at = now
    try:
        nodes_manager.initialize()
    except (redis.RedisError, RedisClusterException) as exc:
        logger.debug("redis.slots_refresh_failed %s", exc)


def _outage(exc: Exception) -> redis.ConnectionError:
    if isinstance(exc, ClusterCrossSlotError):  # a key layout bug, not an outage: say so loudly
        logger.error("redis.cross_slot %s", exc)
    return redis.ConnectionError(f"Redis Cluster: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _faults_as_outage(nodes_manager: Any) -> Iterator[None]:
    """Around one call to the cluster (a command or a pipeline's execute): a failed call reloads the slot
    map, and a cluster-level fault (``CLUSTER_FAULTS``) is raised as the ``redis.ConnectionError`` of an
    outage."""
    try:
        yield
    except CLUSTER_FAULTS as exc:
        _slots_refresh(nodes_manager)
        raise _outage(exc) from exc
    except (redis.ConnectionError, redis.TimeoutError):
        _slots_refresh(nodes_manager)
        raise


class _GuardedCluster(RedisCluster):
    """``RedisCluster`` over ``GuardedConnection``s whose cluster-level failures (``CLUSTER_FAULTS``) are
    ``redis.ConnectionError``, from commands and from pipelines alike (see ``CLUSTER_FAULTS``).

    Made lazily: ``RedisCluster`` reads the slot map from a node while it is made, so a cluster that does
    not answer would make the constructor raise, where every caller makes its client outside its degraded
    path (a ``redis.Redis`` never connects before its first command). This one is made by the factory
    without a round trip and becomes the real client on its first use (``__getattr__``: the first attribute
    only ``RedisCluster.__init__`` sets); until a node answers, each use raises ``redis.ConnectionError``
    (at once while the guard marks the nodes down) and the next one tries again."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:  # RedisCluster.__init__ runs on first use
        self.__dict__["_lazy"] = (url, options, threading.RLock())
        # what a script registered before the first call needs (``register_script`` hashes its source)
        self.__dict__["encoder"] = Encoder(
            "utf-8", "strict", bool(options.get("decode_responses", False))
        )

    def _connect(self) -> None:
        url, options, lock = self.__dict__["_lazy"]
        with lock:
            if self.__dict__.get("_made"):
                return
            self.__dict__["_connecting"] = threading.get_ident()  # its own attribute reads inside __init__
            try:
                RedisCluster.__init__(self, url=url, **options)
            except CLUSTER_FAULTS as exc:  # no node reachable: an outage, as on one Redis
                self.__dict__.pop("nodes_manager", None)
                raise redis.ConnectionError(f"Redis Cluster at {url} unreachable: {exc}") from exc
            finally:
                self.__dict__["_connecting"] = None
            # only now: another thread reads the client's attributes once every one of them is set
            self.__dict__["_made"] = True

    def __getattr__(self, name: str) -> Any:
        # only for attributes not set yet: the client's state, made on first use
        state = self.__dict__
        if (
            name.startswith("__")
            or "_lazy" not in state
            or state.get("_made")
            or state.get("_connecting") == threading.get_ident()
        ):
            raise AttributeError(name)
        self._connect()  # another thread making it: this one waits on the lock, then reads what it made
        return object.__getattribute__(self, name)

    def close(self) -> None:
        if self.__dict__.get("_made"):
            super().close()

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _faults_as_outage(self.nodes_manager):
            return super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        pipe.__class__ = _GuardedClusterPipeline
        return pipe


class _GuardedClusterPipeline(ClusterPipeline):
    """A cluster pipeline whose ``CLUSTER_FAULTS`` are ``redis.ConnectionError`` (see ``_GuardedCluster``)."""

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        with _faults_as_outage(self.nodes_manager):
            replies = super().execute(raise_on_error=raise_on_error)
        if not raise_on_error and any(
            isinstance(reply, (redis.ConnectionError, redis.TimeoutError, *CLUSTER_FAULTS)) for reply in replies
        ):
            _slots_refresh(self.nodes_manager)  # the caller takes the failures from the replies
        return replies


def reply_timeout_s(client: Any) -> float | None:
    """How long ``client`` waits for a reply (its socket timeout; None: for ever), read without connecting: a
    cluster client made by ``redis_client`` connects on its first use, and this is not one."""
    if isinstance(client, _GuardedCluster):
        options = client.__dict__["_lazy"][1]
    elif isinstance(client, RedisCluster):
        options = client.nodes_manager.connection_kwargs
    else:
        options = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None) or {}
    timeout = options.get("socket_timeout")
    return float(timeout) if timeout else None


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
        try:
            masters = client.get_primaries()
        except redis.RedisError:  # a cluster client not made yet because no node answers
            return True
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
