"""Feature benchmarks: online update cost, Redis round trips, training-set build over a generated stream.

    python -m benchmarks.features [--events 1000000] [--online-events 50000] [--redis-url URL] [--skip-redis]

Prints one JSON object:

- ``online``: in-process update cost per event (``event_ops`` alone, ``MemoryFeatureStore.observe``
  one event per call, wall and CPU time, and in batches of 100), and the read-out cost of one user;
- ``redis``: for batches of 1, 10 and 100 events, events per round trip (always the batch size: one
  ``MULTI`` pipeline per ``observe``), round trips per second and events per second; read latency
  (one pipelined round trip) p50/p99. Uses only keys under the ``bench:`` prefix of that database.
- ``training_set``: wall time, events/s, points and peak memory to stream the generated events through
  ``training_points`` (every 5th interest event, H = 10), and the same with the pair rows of every
  point computed (what the models then do).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import time
from collections.abc import Iterator

from inference.events import EventRecord
from inference.features import candidate_categories, event_ops, pair_features
from inference.store.memory import MemoryFeatureStore
from inference.training.dataset import training_points

TYPES = ("page_view", "page_view", "page_view", "page_ping", "click", "ad_impression", "ad_click")
DEVICES = ("desktop", "mobile", "tablet")


def generated_events(
    n: int, *, users: int = 20_000, categories: int = 200, seed: int = 1
) -> Iterator[EventRecord]:
    """A time-ordered synthetic clickstream, generated lazily (memory does not grow with ``n``)."""
    rng = random.Random(seed)
    names = [f"cat-{i}" for i in range(categories)]
    ts = 1_700_000_000.0
    for _ in range(n):
        ts += rng.expovariate(1 / 2.0)
        user = rng.randrange(users)
        favourite = names[user % categories]
        cats = (
            (favourite,)
            if rng.random() < 0.5
            else (favourite, names[int(rng.paretovariate(1.2)) % categories])
        )
        kind = rng.choice(TYPES)
        yield EventRecord(
            user_id=f"u{user}",
            ts=ts,
            type=kind,
            categories=cats,
            item_id=f"i{rng.randrange(100_000)}",
            session_id=f"u{user}-{int(ts // 3_600)}",
            engaged_ms=rng.randrange(1_000, 15_000) if kind == "page_ping" else 0,
            device=DEVICES[user % 3],
        )


def online(n: int) -> dict[str, float]:
    events = list(generated_events(n, users=2_000, categories=50))
    started = time.perf_counter()
    for record in events:
        event_ops(record)
    ops_us = (time.perf_counter() - started) / n * 1e6
    store = MemoryFeatureStore()
    started, cpu = time.perf_counter(), time.process_time()
    for record in events:
        store.observe([record])
    single_us = (time.perf_counter() - started) / n * 1e6
    # CPU time of this process: what the figure is on a machine shared with other work
    single_cpu_us = (time.process_time() - cpu) / n * 1e6
    batched = MemoryFeatureStore()
    started = time.perf_counter()
    for i in range(0, n, 100):
        batched.observe(events[i : i + 100])
    batch_us = (time.perf_counter() - started) / n * 1e6
    now = events[-1].ts
    users = [f"u{i}" for i in range(200)]
    started = time.perf_counter()
    for user in users:
        store.read(user, now=now)
    read_us = (time.perf_counter() - started) / len(users) * 1e6
    return {
        "events": n,
        "event_ops_us_per_event": round(ops_us, 2),
        "memory_observe_us_per_event": round(single_us, 2),
        "memory_observe_cpu_us_per_event": round(single_cpu_us, 2),
        "memory_observe_batch100_us_per_event": round(batch_us, 2),
        "memory_read_us_per_user": round(read_us, 1),
    }


def redis_section(url: str, n: int) -> dict[str, object]:
    from inference.store.redis import RedisFeatureStore

    store = RedisFeatureStore(
        url, prefix="bench:", read_timeout_s=1.0, write_timeout_s=10.0, population_cache_s=0.0
    )
    store.clear()
    events = list(generated_events(n, users=2_000, categories=50, seed=2))
    result: dict[str, object] = {"events": n}
    for batch in (1, 10, 100):
        store.clear()
        started = time.perf_counter()
        trips = 0
        for i in range(0, n, batch):
            store.observe(events[i : i + batch])
            trips += 1
        seconds = time.perf_counter() - started
        result[f"batch{batch}"] = {
            "events_per_round_trip": batch,
            "round_trips_per_s": round(trips / seconds, 1),
            "events_per_s": round(n / seconds, 1),
            "us_per_event": round(seconds / n * 1e6, 1),
        }
    now = events[-1].ts
    latencies = []
    for i in range(500):
        started = time.perf_counter()
        store.read(f"u{i % 2_000}", now=now)
        latencies.append((time.perf_counter() - started) * 1e3)
    latencies.sort()
    result["read_ms"] = {
        "p50": round(statistics.median(latencies), 3),
        "p99": round(latencies[int(0.99 * len(latencies)) - 1], 3),
        "round_trips_per_read": 1,
    }
    store.clear()
    store.close()
    return result


def training_set(n: int, *, with_rows: bool) -> dict[str, float]:
    started = time.perf_counter()
    points = rows = 0
    for point in training_points(generated_events(n), horizon=10, sample_every=5, min_history=5):
        points += 1
        if with_rows:
            candidates = candidate_categories(point.user, point.population.popular(20))
            rows += len(pair_features(point.user, point.population, candidates))
    seconds = time.perf_counter() - started
    return {
        "events": n,
        "seconds": round(seconds, 1),
        "events_per_s": round(n / seconds),
        "points": points,
        "pair_rows": rows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="training-set stream length")
    parser.add_argument("--online-events", type=int, default=50_000)
    parser.add_argument("--redis-events", type=int, default=20_000)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--skip-rows", action="store_true", help="skip the build with pair rows")
    args = parser.parse_args()
    report: dict[str, object] = {"online": online(args.online_events)}
    if not args.skip_redis:
        report["redis"] = redis_section(args.redis_url, args.redis_events)
    report["training_set"] = training_set(args.events, with_rows=False)
    if not args.skip_rows:
        report["training_set_with_pair_rows"] = training_set(args.events, with_rows=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
