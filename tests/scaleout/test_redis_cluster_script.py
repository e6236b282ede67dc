"""scripts/redis_cluster.sh: the cluster it starts serves every slot, and stop leaves no node behind."""

from __future__ import annotations

import pytest
import redis
from redis.cluster import RedisCluster

from tests.scaleout.conftest import RedisClusterNodes, cluster_started

pytestmark = pytest.mark.scaleout


def test_cluster_of_three_masters_serves_keys_of_every_node(redis_cluster: RedisClusterNodes) -> None:
    client = RedisCluster.from_url(redis_cluster.url)
    try:
        roles = {
            int(address.split("@")[0].rsplit(":", 1)[1]): ("master" if "master" in info["flags"] else "replica")
            for address, info in redis.Redis(port=redis_cluster.base).cluster("nodes").items()
        }
        assert sorted(roles) == redis_cluster.ports
        assert sorted(roles.values()) == ["master"] * 3 + ["replica"] * 3
        # keys spread over all three masters, each readable back through any node
        keys = [f"spread:{i}" for i in range(60)]
        for key in keys:
            client.set(key, key)
        owners = {client.get_node_from_key(key).port for key in keys}
        assert len(owners) == 3
        assert [client.get(key) for key in keys] == [k.encode() for k in keys]
        assert "cluster_state:ok" in redis_cluster.script("status").stdout
    finally:
        client.close()


def test_stop_leaves_no_node_answering() -> None:
    with cluster_started(replicas=0) as nodes:
        assert nodes.script("status").returncode == 0
        assert nodes.script("stop").returncode == 0
        for port in nodes.ports:
            with pytest.raises(redis.ConnectionError):
                redis.Redis(port=port, socket_connect_timeout=1).ping()
        assert nodes.script("status").returncode != 0
