"""A Redis Cluster master killed under the pipeline paths: the event buffer's append (one script per shard,
pipelined over the masters), the feature batch (one script per visitor, pipelined) and its read, and the ad
reservation (caps, budget and stats in three slots). While the cluster fails over (the master's slots
unserved, ``CLUSTERDOWN`` from the others, then ``MOVED`` to the promoted replica), each path raises only
the error its caller degrades on (the collect path writes through to the database, serving answers from the
prior, the decisions serve house ads): never another exception, which would reach a visitor as a 5xx. Then
every path works again by itself."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from adsite.ads.accounting import OK, Charge, LedgerUnavailable, RedisLedger
from inference.events import EventRecord
from inference.redis_clients import guard_reset, redis_client
from inference.store.base import FeatureStorePartlyApplied, FeatureStoreUnavailable
from inference.store.redis import RedisFeatureStore
from tests.scaleout.conftest import cluster_started
from tracking.buffer import stream_append

pytestmark = pytest.mark.scaleout

PRICE = 1_000


def _row(event_id: str) -> tuple[object, ...]:
    return (event_id, "page_view", "u", "s", 0, 0, "", "", "", "[]", "{}", "", "web", "", "", False)


def test_a_killed_master_never_raises_past_the_degraded_paths_and_they_recover() -> None:
    with cluster_started(replicas=1) as nodes:
        tracking = {**settings.TRACKING, "STREAM_SHARDS": 8, "BUFFER": "redis", "REDIS_URL": nodes.url}
        with override_settings(REDIS_URL=nodes.url, REDIS_CLUSTER=True, TRACKING=tracking):
            guard_reset()
            prefix = f"failover-{uuid.uuid4().hex[:8]}:"
            ledger = RedisLedger(nodes.url, prefix=prefix)
            store = RedisFeatureStore(nodes.url, read_timeout_s=0.25, write_timeout_s=0.5, population_cache_s=0.0)
            # three campaigns, so the reservation's caps, budgets and stats sit in slots of every master
            charges = [Charge(c, c * 10, PRICE, 10**9, 10**9, cap_per_hour=0, cap_per_day=10**6) for c in (1, 2, 3)]
            counter = iter(range(10**9))

            def collect() -> None:
                stream_append([_row(f"{uuid.uuid4()}") for _ in range(16)])  # the collect path's own call

            cut: list[tuple[list[str], frozenset[str]]] = []  # batches applied for some visitors only

            def features() -> None:
                n = next(counter)
                visitors = [f"v{n}-{u}" for u in range(12)]
                try:
                    store.observe([EventRecord(v, time.time(), "page_view", ("sports",)) for v in visitors])
                except FeatureStorePartlyApplied as exc:
                    cut.append((visitors, exc.applied_users))
                    raise
                store.read(visitors[0])

            def reserve() -> None:
                outcomes = ledger.impressions_reserve(charges=charges, user_id=f"r{next(counter)}", now=time.time())
                assert outcomes == [OK] * 3

            # what each caller catches to degrade (tracking/services.py, inference/api.py, adsite/ads/selection.py)
            paths: dict[str, tuple[Callable[[], None], type[Exception]]] = {
                "collect": (collect, redis.RedisError),
                "features": (features, FeatureStoreUnavailable),
                "reserve": (reserve, LedgerUnavailable),
            }
            for call, _ in paths.values():
                call()  # all well before the kill
            client = redis_client(nodes.url)
            victim = client.get_node_from_key(ledger._spend(1)).port
            os.kill(int((nodes.directory / str(victim) / "redis.pid").read_text()), signal.SIGKILL)

            degraded: Counter[str] = Counter()
            other: list[str] = []
            healthy_rounds = 0
            started = time.monotonic()
            while time.monotonic() - started < 60 and healthy_rounds < 10:
                round_ok = True
                for name, (call, expected) in paths.items():
                    try:
                        call()
                    except expected:
                        degraded[name] += 1
                        round_ok = False
                    except Exception as exc:  # anything else would reach a visitor as a 5xx
                        other.append(f"{name}: {type(exc).__name__}: {exc}")
                        round_ok = False
                healthy_rounds = healthy_rounds + 1 if round_ok else 0
                time.sleep(0.05)
            assert other == [], other[:5]
            assert set(degraded) == set(paths), degraded  # each path did meet the outage
            assert healthy_rounds >= 10, f"not recovered within 60 s: {degraded}"
            assert client.get_node_from_key(ledger._spend(1)).port != victim
            # a batch the failing master cut: applied whole for the visitors it names, not at all for the others
            for visitors, applied in cut:
                events = {v: store.read(v).user.events for v in visitors}
                assert {v for v, n in events.items() if n == 1} == applied and set(events.values()) <= {0, 1}
            guard_reset()
