"""The online feature store: both backends behave the same, Redis atomically and in one round trip."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from feature_assertions import assert_same_population, assert_same_user

from inference.events import EventRecord
from inference.features import HALF_LIVES
from inference.store import FeatureStoreUnavailable, feature_store, feature_store_reset, serving_state_reader
from inference.store.base import FeatureStore
from inference.store.memory import MemoryFeatureStore

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000.0


def views(user: str, n: int, *, start: float = T0, category: str = "sports") -> list[EventRecord]:
    return [
        EventRecord(user, start + i, "page_view", (category, f"c{i % 3}"), item_id=f"i{i}", session_id="s")
        for i in range(n)
    ]


@pytest.fixture
def redis_store(redis_client: object) -> Iterator[FeatureStore]:
    from inference.store.redis import RedisFeatureStore

    store = RedisFeatureStore(settings.REDIS_URL, population_cache_s=0.0, read_timeout_s=2.0)
    yield store
    store.close()


def test_memory_store_cold_user_reads_empty_and_serving_gets_none() -> None:
    store = MemoryFeatureStore()
    result = store.read("nobody", now=T0)
    assert result.user.is_cold and result.user.counts == {}
    feature_store_reset()
    try:
        user, population = serving_state_reader()("nobody")
        assert user is None and population is not None
    finally:
        feature_store_reset()


def test_events_observe_updates_the_next_read_at_once() -> None:
    from inference import api

    feature_store_reset()
    try:
        api.events_observe(views("visitor", 2, start=T0))
        api.events_observe([EventRecord("visitor", T0 + 5, "click", ("travel",), item_id="t")])
        user, _ = serving_state_reader()("visitor")
        assert user is not None and user.counts["travel"] == 1.0 and user.recent[-1].item_id == "t"
        api.user_forget("visitor")
        assert serving_state_reader()("visitor")[0] is None
    finally:
        feature_store_reset()


def test_store_rebuild_from_chunks_equals_the_incremental_store(
    stream: Callable[..., list[EventRecord]],
) -> None:
    events = stream(events=400)
    incremental = MemoryFeatureStore(population_cache_s=0.0)
    for record in events:
        incremental.observe([record])
    rebuilt = MemoryFeatureStore(population_cache_s=0.0)
    rebuilt.observe(views("stale-user", 3))
    assert rebuilt.rebuild(events[i : i + 64] for i in range(0, len(events), 64)) == len(events)
    assert rebuilt.read("stale-user", now=T0).user.is_cold
    now = events[-1].ts + 1
    for user in {e.user_id for e in events}:
        a, b = incremental.read(user, now=now), rebuilt.read(user, now=now)
        assert_same_user(b.user, a.user)
        assert_same_population(b.population, a.population)


def test_unreachable_redis_raises_feature_store_unavailable() -> None:
    """Nothing listens on the port: reads and writes raise the documented exception, not a redis error."""
    import socket

    from inference.store.redis import RedisFeatureStore

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisFeatureStore(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(FeatureStoreUnavailable):
        store.read("u", now=T0)
    with pytest.raises(FeatureStoreUnavailable):
        store.observe(views("u", 1))
    try:
        with pytest.raises(FeatureStoreUnavailable):
            serving_state_reader(f"redis://127.0.0.1:{port}/0")("u")
    finally:
        feature_store_reset()
    store.close()


def test_redis_that_dies_mid_service_raises_feature_store_unavailable(private_redis: str) -> None:
    import redis

    from inference.store.redis import RedisFeatureStore

    store = RedisFeatureStore(private_redis, read_timeout_s=0.5)
    store.observe(views("u", 3))
    assert store.read("u", now=T0 + 10).user.events == 3
    redis.Redis.from_url(private_redis).shutdown(nosave=True)
    with pytest.raises(FeatureStoreUnavailable):
        store.read("u", now=T0 + 10)
    store.close()


@pytest.fixture
def lua_store() -> Iterator[FeatureStore]:
    """The Redis store's own Lua on fakeredis (``fakeredis[lua]``): the rule the Redis store applies
    server-side checked against the in-process store's Python in ``make test``, without a Redis."""
    import fakeredis

    from inference.store.redis import RedisFeatureStore

    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    store = RedisFeatureStore("redis://fake", population_cache_s=0.0, client=client)
    yield store
    store.close()


@pytest.mark.requires_redis
def test_redis_store_matches_memory_store_for_batches(
    redis_store: FeatureStore, stream: Callable[..., list[EventRecord]]
) -> None:
    _matches_memory_store_for_batches(redis_store, stream)


def test_the_redis_stores_lua_matches_the_memory_store_for_batches(
    lua_store: FeatureStore, stream: Callable[..., list[EventRecord]]
) -> None:
    _matches_memory_store_for_batches(lua_store, stream)


def _matches_memory_store_for_batches(redis_store: FeatureStore, stream: Callable[..., list[EventRecord]]) -> None:
    events = stream(events=500)
    memory = MemoryFeatureStore(population_cache_s=0.0)
    for i in range(0, len(events), 37):  # uneven batches: coalescing must not change anything
        redis_store.observe(events[i : i + 37])
        memory.observe(events[i : i + 37])
    now = events[-1].ts + 60
    for user in {e.user_id for e in events}:
        a, b = memory.read(user, now=now), redis_store.read(user, now=now)
        assert_same_user(b.user, a.user)
        assert_same_population(b.population, a.population)
    assert redis_store.read("nobody", now=now).user.is_cold
    for user in {e.user_id for e in events}:  # the same pruned sessions and dropped epochs, field for field
        assert redis_store.user_state(user).sessions == memory.user_state(user).sessions
        assert redis_store.user_state(user).sums.keys() == memory.user_state(user).sums.keys()
    redis_store.forget("user-1")
    assert redis_store.read("user-1", now=now).user.is_cold


@pytest.mark.requires_redis
def test_redis_store_keeps_two_decay_epochs_like_the_memory_store(redis_store: FeatureStore) -> None:
    _keeps_two_decay_epochs_like_the_memory_store(redis_store)


def test_the_redis_stores_lua_keeps_two_decay_epochs_like_the_memory_store(lua_store: FeatureStore) -> None:
    _keeps_two_decay_epochs_like_the_memory_store(lua_store)


def _keeps_two_decay_epochs_like_the_memory_store(redis_store: FeatureStore) -> None:
    """Weekly visits for two years, late arrivals included: Redis rolls decay epochs over exactly as
    the in-process state does, so a long history stays small and reads the same."""
    events = [
        EventRecord("loyal", T0 + week * 7 * 86_400.0 + i * 600.0, "page_view", ("abcd"[(week + i) % 4],))
        for week in range(104)
        for i in range(3)
    ]
    late = [EventRecord("loyal", e.ts, e.type, e.categories) for e in events[::50]]  # re-delivered old events
    memory = MemoryFeatureStore(population_cache_s=0.0)
    for i in range(0, len(events), 7):
        memory.observe(events[i : i + 7])
        redis_store.observe(events[i : i + 7])
    memory.observe(late)
    redis_store.observe(late)
    a, b = memory.user_state("loyal"), redis_store.user_state("loyal")
    assert a.sums.keys() == b.sums.keys()
    assert len([name for name in b.sums if name.startswith("d:")]) <= 2 * len(HALF_LIVES) * 4
    now = events[-1].ts + 60.0
    assert_same_user(redis_store.read("loyal", now=now).user, memory.read("loyal", now=now).user)


@pytest.mark.requires_redis
def test_control_characters_in_ids_cannot_corrupt_the_redis_fields(redis_store: FeatureStore) -> None:
    odd = [
        EventRecord("odd", T0, "page_view", ("a",), item_id="x\x1fy\x1ez", session_id="s\x1e1\x1f2"),
        EventRecord("odd", T0 + 1, "page_ping", ("a",), session_id="s\x1e1\x1f2", engaged_ms=1500),
    ]
    memory = MemoryFeatureStore()
    memory.observe(odd)
    redis_store.observe(odd)
    a, b = memory.read("odd", now=T0 + 2).user, redis_store.read("odd", now=T0 + 2).user
    assert_same_user(b, a)
    assert b.recent[0].item_id == "xyz" and b.session_events == 2.0 and b.session_engaged_s == 1.5


@pytest.mark.requires_redis
def test_redis_store_keeps_one_user_in_one_cluster_slot(redis_store: FeatureStore, redis_client: Any) -> None:
    from redis.crc import key_slot

    from inference.store.redis import user_keys

    redis_store.observe(views("slot-user", 3))
    keys = user_keys("slot-user")
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert all(redis_client.exists(k) for k in keys)  # what Redis holds, read as any other client reads it


@pytest.mark.requires_redis
def test_redis_store_writes_a_batch_and_reads_a_user_in_one_round_trip(
    redis_store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the store's pipeline class: redis-py's Pipeline on one Redis, the guarded ClusterPipeline on a Cluster
    pipeline_class = type(redis_store._writer.pipeline())  # type: ignore[attr-defined]
    calls: list[int] = []
    original = pipeline_class.execute

    def counting(self: Any, raise_on_error: bool = True) -> list:
        calls.append(len(self))  # the commands queued
        return original(self, raise_on_error)

    monkeypatch.setattr(pipeline_class, "execute", counting)
    batch = [e for u in range(10) for e in views(f"batch-{u}", 20)]
    redis_store.observe(batch)
    # one script call per user and one for the population, in one pipeline (one MULTI on one Redis; one
    # round trip per master on a Cluster)
    assert len(calls) == 1 and calls[0] == 11
    assert all(redis_store.read(f"batch-{u}", now=T0 + 100).user.events == 20 for u in range(10))
    calls.clear()
    result = redis_store.read("batch-3", now=T0 + 101)
    assert len(calls) == 1 and result.user.events == 20


@pytest.mark.requires_redis
def test_reading_many_visitors_keeps_a_bounded_memo_of_their_sequences(redis_store: FeatureStore) -> None:
    """A serving process reads visitor after visitor; every sequence entry it has decoded must not stay
    in memory for good. 600 visitors x 50 entries (30,000 distinct entries, ~16 MiB if all were kept)."""
    import gc
    import tracemalloc

    visitors = 600
    for first in range(0, visitors, 50):
        redis_store.observe(
            [e for u in range(first, first + 50) for e in views(f"memo-{u}", 50, start=T0 + u * 100)]
        )
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for u in range(visitors):
            assert len(redis_store.read(f"memo-{u}", now=T0 + 100_000).user.recent) == 50
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 8 * 2**20, f"{kept / 2**20:.1f} MiB kept after reading {visitors} visitors"


CONCURRENT_WRITER = """
import sys
from inference.events import EventRecord
from inference.features import HALF_LIVES
from inference.store.redis import RedisFeatureStore
url, writer, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = RedisFeatureStore(url, write_timeout_s=5.0)
for i in range(0, n, 5):
    store.observe([EventRecord("hot", 1_700_000_000.0 + writer * 0.001 + j, "page_view", ("sports", f"w{writer}"),
                               item_id=f"{writer}-{j}", session_id="s") for j in range(i, min(n, i + 5))])
"""


@pytest.mark.requires_redis
def test_concurrent_writers_for_one_user_lose_no_update(redis_store: FeatureStore) -> None:
    """Threads and separate processes write events for the same user at once; every update counts."""
    per_writer = 200
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_WRITER, settings.REDIS_URL, str(w), str(per_writer)], cwd=ROOT
        )
        for w in range(3)
    ]
    from inference.store.redis import RedisFeatureStore

    def thread_writer(writer: int) -> None:
        store = RedisFeatureStore(settings.REDIS_URL, write_timeout_s=5.0)
        for j in range(per_writer):
            store.observe(
                [
                    EventRecord(
                        "hot", T0 + writer * 0.001 + j, "page_view", ("sports", f"w{writer}"), session_id="s"
                    )
                ]
            )
        store.close()

    threads = [threading.Thread(target=thread_writer, args=(w,)) for w in range(3, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        assert process.wait(timeout=120) == 0
    writers = 7
    result = redis_store.read("hot", now=T0 + per_writer)
    user = result.user
    assert user.events == writers * per_writer
    assert user.counts["sports"] == writers * per_writer
    assert all(user.counts[f"w{w}"] == per_writer for w in range(writers))
    assert user.type_counts == {"page_view": writers * per_writer}
    assert user.session_events == writers * per_writer
    assert user.last_ts == T0 + (writers - 1) * 0.001 + per_writer - 1
    assert len(user.recent) == 50
    expected_hour = sum(
        2.0 ** (-(T0 + per_writer - (T0 + w * 0.001 + j)) / 3_600.0)
        for w in range(writers)
        for j in range(per_writer)
    )
    assert user.decayed[0]["sports"] == pytest.approx(expected_hour, rel=1e-9)
    assert result.population.counts["sports"] == writers * per_writer


def test_settings_choose_the_memory_store_in_embedded_mode() -> None:
    feature_store_reset()
    try:
        if settings.INFERENCE.get("STORE", "memory") == "memory":
            assert isinstance(feature_store(), MemoryFeatureStore)
    finally:
        feature_store_reset()


@pytest.mark.requires_redis
def test_a_users_feature_keys_expire_by_default(redis_client: Any) -> None:
    """The site's feature store (built from the settings, as every process builds it): a visitor's keys
    carry an idle TTL, so abandoned visitors do not accumulate in Redis."""
    from inference.store import _redis_store
    from inference.store.redis import user_keys

    store = _redis_store(settings.REDIS_URL)
    store.observe(views("idle-user", 2))
    ttls = [redis_client.ttl(k) for k in user_keys("idle-user") if redis_client.exists(k)]
    assert ttls and all(0 < ttl <= 395 * 86400 for ttl in ttls)
