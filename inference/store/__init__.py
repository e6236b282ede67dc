"""The online feature store, behind one interface (``base.FeatureStore``).

``feature_store()`` is the configured store of this process: ``INFERENCE["STORE"]`` ``"memory"``
(embedded mode: one in-process store) or ``"redis"`` (services mode, ``settings.REDIS_URL``).
``feature_store(url=...)`` builds (and keeps) a Redis store for an explicit URL.
``serving_state_reader()`` is what serving calls: ``read(user_id, now=None) -> (user features or None
when cold, population features)`` at ``now`` (the predictor's clock), one round trip, :class:`FeatureStoreUnavailable` when unreachable.

The in-process store does not survive a restart: with ``INFERENCE["STORE_REBUILD_ON_START"]`` the
process's memory store is rebuilt from the stored events (``inference.signals.stored_events``) when it is
first needed, before anyone reads or writes it. ``feature_store_rebuild()`` (and
``manage.py features_rebuild``) replays the events into the configured store on demand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from inference.backends import backends, stores_close
from inference.features import PopulationFeatures, UserFeatures
from inference.store.base import FeatureStore, FeatureStoreUnavailable, StoreRead

__all__ = [
    "FeatureStore",
    "FeatureStoreUnavailable",
    "StateReader",
    "StoreRead",
    "feature_store",
    "feature_store_rebuild",
    "feature_store_reset",
    "serving_state_reader",
]

# read(user_id, now=None): now None is the current time; the evaluation through serving passes its clock
StateReader = Callable[..., tuple[UserFeatures | None, PopulationFeatures | None]]

logger = logging.getLogger(__name__)
# The stores built so far are this process's (``inference.backends``: ``stores``, ``store_generation``, bumped by
# ``feature_store_reset()`` so that readers made earlier follow it, and ``stores_lock``).


def feature_store_rebuild(store: FeatureStore | None = None) -> int:
    """Clear ``store`` (default: the configured one) and replay every stored event into it, in time
    order, from the app that stores them (``inference.signals.stored_events``: non-bot events, chunks).
    Returns the number replayed."""
    from inference.signals import store_rebuild_started, stored_events

    events = stored_events()
    store_rebuild_started.send(sender=feature_store_rebuild)
    return (store or feature_store()).rebuild(events)


def _redis_store(url: str) -> FeatureStore:
    from inference.conf import inference_setting
    from inference.store.redis import RedisFeatureStore

    return RedisFeatureStore(
        url,
        read_timeout_s=float(inference_setting("STORE_READ_TIMEOUT_S")),
        write_timeout_s=float(inference_setting("STORE_WRITE_TIMEOUT_S")),
        population_cache_s=float(inference_setting("STORE_POPULATION_CACHE_S")),
        ttl_s=float(inference_setting("STORE_TTL_S")),
    )


def feature_store(url: str | None = None) -> FeatureStore:
    """The process's feature store (built once per backend and URL)."""
    if url is not None:
        key = f"redis:{url}"
    else:
        from django.conf import settings

        from inference.conf import inference_setting

        kind = inference_setting("STORE")
        if kind == "memory":
            key = "memory"
        elif kind == "redis":
            url = getattr(settings, "REDIS_URL", None)
            if not url:
                raise FeatureStoreUnavailable('INFERENCE["STORE"] is "redis" but REDIS_URL is not set')
            key = f"redis:{url}"
        else:
            raise ValueError(f'unknown INFERENCE["STORE"] {kind!r} (memory or redis)')
    state = backends()
    store = state.stores.get(key)
    if store is None:
        with state.stores_lock:
            store = state.stores.get(key)
            if store is None:
                if key == "memory":
                    from inference.conf import inference_setting
                    from inference.store.memory import MemoryFeatureStore

                    store = MemoryFeatureStore(
                        population_cache_s=float(inference_setting("STORE_POPULATION_CACHE_S"))
                    )
                    if inference_setting("STORE_REBUILD_ON_START"):
                        started = time.perf_counter()
                        try:  # before the store is published: nobody reads a half-built store
                            events = feature_store_rebuild(store)
                            logger.info(
                                "inference.store_rebuilt",
                                extra={"events": events, "seconds": round(time.perf_counter() - started, 2)},
                            )
                        except Exception:  # serve what arrives from now on rather than nothing
                            logger.exception("inference.store_rebuild_failed")
                else:
                    store = _redis_store(key.removeprefix("redis:"))
                state.stores[key] = store
    return store


def feature_store_reset() -> None:
    """Forget the stores built so far (tests; a new settings value takes effect on the next call)."""
    stores_close(backends())


def serving_state_reader(url: str | None = None) -> StateReader:
    """``read(user_id) -> (UserFeatures or None when cold, PopulationFeatures)`` in one round trip.

    Raises :class:`FeatureStoreUnavailable` when the store cannot be reached (short timeouts).
    """
    state = backends()
    current: list[Any] = [state, state.store_generation, feature_store(url)]

    def read(user_id: str, now: float | None = None) -> tuple[UserFeatures | None, PopulationFeatures | None]:
        state = backends()
        if state is not current[0] or state.store_generation != current[1]:
            # the stores were reset or replaced: read the one built now, not the old one
            current[:] = [state, state.store_generation, feature_store(url)]
        store: FeatureStore = current[2]
        result = store.read(user_id, now=now)
        return (None if result.user.is_cold else result.user), result.population

    return read
