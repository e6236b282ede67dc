"""The scale-out mode's Redis clients on a real Redis Cluster: the one factory gives a ``RedisCluster`` with
the same timeouts and guard, the cache works across slots, ``/readyz`` names the mode and the nodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client, override_settings
from redis.cluster import RedisCluster

from inference.redis_clients import TIMEOUTS, GuardedConnection, guard_reset, redis_client
from tests.scaleout.conftest import RedisClusterNodes

pytestmark = [pytest.mark.scaleout, pytest.mark.django_db]


@pytest.fixture
def scale_out(redis_cluster: RedisClusterNodes) -> Iterator[RedisClusterNodes]:
    guard_reset()
    with override_settings(REDIS_URL=redis_cluster.url, REDIS_CLUSTER=True, ADSITE_MODE="scale-out"):
        yield redis_cluster
    guard_reset()


def test_factory_gives_a_guarded_cluster_client_with_the_request_timeout(scale_out: RedisClusterNodes) -> None:
    client = redis_client(scale_out.url)
    assert isinstance(client, RedisCluster)
    node = client.get_primaries()[0]
    pool = node.redis_connection.connection_pool
    assert pool.connection_class is GuardedConnection
    assert pool.connection_kwargs["socket_timeout"] == TIMEOUTS["request"]
    assert client.retry.get_retries() == 0
    # keys of every master, through the node the URL names
    for i in range(30):
        client.set(f"factory:{i}", i)
    assert {client.get_node_from_key(f"factory:{i}").port for i in range(30)} == {
        n.port for n in client.get_primaries()
    }


def test_cache_on_the_cluster_reads_and_writes_keys_of_every_slot(scale_out: RedisClusterNodes) -> None:
    from inference.redis_clients import ClusterRedisCache

    cache = ClusterRedisCache(scale_out.url, {})
    values = {f"k{i}": i for i in range(40)}
    cache.set_many(values, timeout=60)
    assert cache.get_many(list(values)) == values  # MGET across slots would be refused by the cluster
    assert cache.add("lock", "me", timeout=5) and not cache.add("lock", "you", timeout=5)
    cache.delete_many(list(values))
    assert cache.get_many(list(values)) == {}


def test_readyz_names_the_mode_and_the_cluster_nodes(scale_out: RedisClusterNodes) -> None:
    answer = Client().get("/readyz").json()
    assert answer["mode"] == "scale-out"
    redis_check = answer["checks"]["redis"]
    assert redis_check["ok"] is True
    nodes = redis_check["nodes"]
    assert sorted(int(n["node"].rsplit(":", 1)[1]) for n in nodes) == scale_out.ports
    assert sorted(n["role"] for n in nodes) == ["master"] * 3 + ["replica"] * 3


def test_a_cluster_with_no_node_answering_is_an_outage_the_callers_degrade_on() -> None:
    import redis

    guard_reset()
    # nothing listens there: made without a round trip, as a client of one Redis is (callers make theirs
    # outside their degraded path); its calls, single or pipelined, raise ConnectionError (redis-py says
    # RedisClusterException, not a RedisError), what every caller's degraded path catches
    client = redis_client("redis://127.0.0.1:1/0", cluster=True)
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    with pytest.raises(redis.ConnectionError):
        client.pipeline(transaction=False).set("a", 1).get("b").execute()
    # and the site's callers degrade on it: the collect path's rate limit counts in-process, the ledger
    # refuses as unavailable (house ads), the feature store as unavailable (the prior answers)
    from adsite.ads.accounting import Charge, LedgerUnavailable, RedisLedger
    from inference.rest.throttling import throttle_counters_reset, window_hit
    from inference.store.base import FeatureStoreUnavailable
    from inference.store.redis import RedisFeatureStore

    with override_settings(REDIS_URL="redis://127.0.0.1:1/0", REDIS_CLUSTER=True):
        throttle_counters_reset()
        assert window_hit("probe", limit=10, period_s=60) == 0.0
        throttle_counters_reset()
        ledger = RedisLedger("redis://127.0.0.1:1/0")
        store = RedisFeatureStore("redis://127.0.0.1:1/0")
    with pytest.raises(LedgerUnavailable):
        ledger.impression_reserve(charge=Charge(1, 1, 1, 10, 10), user_id="v", now=0.0)
    with pytest.raises(FeatureStoreUnavailable):
        store.read("v")
    guard_reset()
