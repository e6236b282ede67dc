"""The training-set builder computes, for a time t, exactly what the online store held at t."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from feature_assertions import assert_same_population, assert_same_user

from inference.events import EventRecord
from inference.features import PopulationFeatures, UserFeatures, candidate_categories, pair_features
from inference.store.base import FeatureStore
from inference.store.memory import MemoryFeatureStore
from inference.training.dataset import training_points


def replay_online(store: FeatureStore, events: list[EventRecord], reads: list[tuple[float, str]]) -> dict:
    """Feed ``events`` one at a time; just before the first event at or after each read time t,
    read the user's features at t (what a request at t would have seen)."""
    reads = sorted(reads)
    held: dict[tuple[float, str], tuple[UserFeatures, PopulationFeatures]] = {}
    position = 0
    for record in events:
        while position < len(reads) and reads[position][0] <= record.ts:
            at, user_id = reads[position]
            result = store.read(user_id, now=at)
            held[(at, user_id)] = (result.user, result.population)
            position += 1
        store.observe([record])
    for at, user_id in reads[position:]:
        result = store.read(user_id, now=at)
        held[(at, user_id)] = (result.user, result.population)
    return held


def check_equality(store: FeatureStore, events: list[EventRecord]) -> int:
    users = sorted({e.user_id for e in events})
    span = events[-1].ts - events[0].ts
    # read times between events, on events, and after the last one
    times = [events[0].ts + span * q for q in (0.1, 0.33, 0.5, 0.77, 0.95)] + [
        events[400].ts,
        events[-1].ts + 99.0,
    ]
    requests = {user: times for user in users}
    points = list(
        training_points(
            events, horizon=5, sample_every=None, prediction_times=requests, population_refresh_events=0
        )
    )
    online = replay_online(store, events, [(t, u) for u in users for t in times])
    assert len(points) == len(online) == len(users) * len(times)
    for point in points:
        user, population = online[(point.ts, point.user_id)]
        assert_same_user(point.user, user)
        assert_same_population(point.population, population)
        candidates = candidate_categories(point.user, point.population.popular(3))
        offline_rows = pair_features(point.user, point.population, candidates)
        online_rows = pair_features(user, population, candidate_categories(user, population.popular(3)))
        np.testing.assert_allclose(offline_rows, online_rows, rtol=1e-6)
    return len(points)


def test_builder_features_at_t_equal_the_online_memory_store_at_t(
    stream: Callable[..., list[EventRecord]],
) -> None:
    events = stream()
    assert check_equality(MemoryFeatureStore(population_cache_s=0.0), events) > 0


def test_sampled_points_equal_the_online_store_just_before_their_event(
    stream: Callable[..., list[EventRecord]],
) -> None:
    events = stream(events=500)
    points = [
        p
        for p in training_points(
            events, horizon=4, sample_every=3, min_history=2, population_refresh_events=0
        )
    ]
    assert len(points) > 20
    wanted = {(p.user_id, p.position): p for p in points}
    store = MemoryFeatureStore(population_cache_s=0.0)
    positions: dict[str, int] = {}
    checked = 0
    for record in events:
        if record.type in {"page_view", "click", "ad_click", "conversion"}:
            position = positions.get(record.user_id, 0)
            point = wanted.get((record.user_id, position))
            if point is not None:
                result = store.read(record.user_id, now=record.ts)
                assert point.ts == record.ts
                assert_same_user(point.user, result.user)
                assert_same_population(point.population, result.population)
                checked += 1
            positions[record.user_id] = position + 1
        store.observe([record])
    assert checked == len(points)


@pytest.mark.requires_redis
def test_builder_features_at_t_equal_the_online_redis_store_at_t(
    stream: Callable[..., list[EventRecord]], redis_client: object
) -> None:
    from django.conf import settings

    from inference.store.redis import RedisFeatureStore

    store = RedisFeatureStore(settings.REDIS_URL, population_cache_s=0.0, read_timeout_s=2.0)
    try:
        assert check_equality(store, stream(events=600)) > 0
    finally:
        store.close()
