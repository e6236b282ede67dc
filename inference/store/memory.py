"""In-process feature store (embedded mode): dict states under one lock.

The one web process of the embedded mode serves from threads, so a lock makes every batch atomic.
State does not survive a restart: ``inference.api.store_rebuild`` replays the stored events at
start-up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from inference.events import EventRecord
from inference.features import (
    FeatureState,
    PopulationFeatures,
    event_ops,
    population_features,
    user_features,
)
from inference.store.base import FeatureStore, StoreRead

__all__ = ["MemoryFeatureStore"]


class MemoryFeatureStore(FeatureStore):
    def __init__(self, *, population_cache_s: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, FeatureState] = {}
        self._population = FeatureState()
        # the population read-out (thousands of categories) is rebuilt at most this often
        self._population_cache_s = population_cache_s
        self._population_version = 0
        self._cached: tuple[int, float, PopulationFeatures] | None = None

    def observe(self, records: Sequence[EventRecord]) -> None:
        # ops are computed outside the lock (pure); only applying them is serialized
        computed = [(record.user_id, *event_ops(record)) for record in records]
        with self._lock:
            users = self._users
            population = self._population
            for user_id, user_ops, population_ops in computed:
                state = users.get(user_id)
                if state is None:
                    state = users[user_id] = FeatureState()
                state.apply(user_ops)
                if population_ops:
                    population.apply(population_ops)
                    self._population_version += 1

    def read(self, user_id: str, *, now: float | None = None) -> StoreRead:
        now = time.time() if now is None else now
        with self._lock:
            user = user_features(self._users.get(user_id), now)
            population = self._population_locked(now)
        return StoreRead(user, population)

    def _population_locked(self, now: float) -> PopulationFeatures:
        cached = self._cached
        if cached is not None:
            version, built, features = cached
            fresh = version == self._population_version or time.monotonic() - built < self._population_cache_s
            if fresh:
                # shares and counts do not depend on `now`; only the stamp does
                return features if features.now == now else replace(features, now=now)
        features = population_features(self._population, now)
        self._cached = (self._population_version, time.monotonic(), features)
        return features

    def population(self, *, now: float | None = None) -> PopulationFeatures:
        now = time.time() if now is None else now
        with self._lock:
            return self._population_locked(now)

    def user_state(self, user_id: str) -> FeatureState:
        with self._lock:
            state = self._users.get(user_id)
            return state.copy() if state is not None else FeatureState()

    def forget(self, user_id: str) -> None:
        with self._lock:
            self._users.pop(user_id, None)

    def clear(self) -> None:
        with self._lock:
            self._users = {}
            self._population = FeatureState()
            self._population_version += 1
            self._cached = None
