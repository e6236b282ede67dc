"""Inference's composition root: what one process of inference holds, in one object.

``backends()`` is this process's :class:`Backends`: the Redis clients and the guard's marks
(``inference.redis_clients``), the feature stores (``inference.store``), the rate limiter's counters
(``inference.rest.throttling``) and the site's taxonomy as last read (``inference.api.category_taxonomy``).
Each of those modules keeps its logic and reads its state from here; none keeps a mutable global of its own.
It is a ``PerProcess`` value, like the predictor (``inference.serving.runtime``) and the ads side's root
(``adsite.platform``): built on first use, built again in a forked worker (so a gunicorn or Celery child
never shares its parent's sockets or marks), and replaced whole with ``backends_use`` (the tests'
``fresh_inference`` fixture: one swap instead of a reset per cache).

The per-part reset functions (``feature_store_reset``, ``guard_reset``, ``throttle_counters_reset``,
``category_taxonomy_reset``) clear one part of the current object: what a test or a command needs after it
changed one setting (a new ``REDIS_URL``, new categories).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inference.process_local import PerProcess

if TYPE_CHECKING:
    from inference.rest.throttling import LocalWindowCounter, RedisWindowCounter
    from inference.store.base import FeatureStore

__all__ = ["Backends", "backends", "backends_close", "backends_use", "stores_close"]


def _local_counter() -> LocalWindowCounter:
    from inference.rest.throttling import LocalWindowCounter

    return LocalWindowCounter()


@dataclass(eq=False)
class Backends:
    """One process's inference state (module docstring). Each part has its own lock."""

    # inference.redis_clients: one client per (url, timeout s, decoding, cluster), and the guard's marks:
    # (host, port) -> monotonic time until which that server is not tried again
    redis_clients: dict[tuple[str, float, bool, bool], Any] = field(default_factory=dict)
    redis_down_until: dict[tuple[str, int], float] = field(default_factory=dict)
    redis_lock: threading.Lock = field(default_factory=threading.Lock)
    # inference.store: the stores built so far ("memory" or "redis:<url>"); the generation is bumped when
    # they are forgotten, so that a state reader made earlier reads the one built next
    stores: dict[str, FeatureStore] = field(default_factory=dict)
    store_generation: int = 0
    stores_lock: threading.Lock = field(default_factory=threading.Lock)
    # inference.rest.throttling: the in-process windows (embedded mode, and while Redis is away) and the
    # Redis counter of settings.REDIS_URL (None until the first hit in services mode)
    throttle_local: LocalWindowCounter = field(default_factory=_local_counter)
    throttle_redis: RedisWindowCounter | None = None
    throttle_lock: threading.Lock = field(default_factory=threading.Lock)
    # inference.api.category_taxonomy: (monotonic time read, the categories)
    taxonomy: tuple[float, frozenset[str]] = (0.0, frozenset())


_backends: PerProcess[Backends] = PerProcess(Backends)


def backends() -> Backends:
    """This process's :class:`Backends` (built on first use)."""
    return _backends.get()


def backends_use(value: Backends | None) -> Backends | None:
    """Make ``value`` this process's backends (None: a fresh one on next use); returns the one replaced."""
    return _backends.install(value)


def stores_close(value: Backends) -> None:
    """Close and forget ``value``'s feature stores; a state reader made earlier builds the next one."""
    with value.stores_lock:
        for store in value.stores.values():
            close = getattr(store, "close", None)
            if close is not None:
                close()
        value.stores.clear()
        value.store_generation += 1


def backends_close(value: Backends) -> None:
    """Close what ``value`` holds open (its feature stores' and Redis clients' connections)."""
    stores_close(value)
    with value.redis_lock:
        clients = list(value.redis_clients.values())
        value.redis_clients.clear()
    for client in clients:
        try:
            client.close()
        except Exception:  # a client whose server is gone closes what it can  # noqa: BLE001
            pass
