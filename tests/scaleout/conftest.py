"""The scale-out suite's Redis Cluster (``make test-scaleout``, marker ``scaleout``).

``redis_cluster`` (session) is a Redis Cluster of 3 masters and 3 replicas of this run's own, started by
``scripts/redis_cluster.sh`` on spare ports under a temporary directory and stopped at the end; it never
touches the machine's Redis. ``cluster_started(...)`` starts another one for a test that breaks it
(kills a master, migrates slots). Where ``redis-server``/``redis-cli`` are missing, the tests that need a
cluster skip with that reason.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "redis_cluster.sh"
MASTERS = 3


@dataclass(frozen=True)
class RedisClusterNodes:
    """A running cluster: ``url`` names its first node (``REDIS_URL`` with ``REDIS_CLUSTER=1``)."""

    directory: Path
    base: int
    replicas: int

    @property
    def ports(self) -> list[int]:
        return [self.base + i for i in range(MASTERS * (1 + self.replicas))]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.base}/0"

    @property
    def env(self) -> dict[str, str]:
        """The environment that puts the site in scale-out mode on this cluster's Redis."""
        return {"REDIS_URL": self.url, "REDIS_CLUSTER": "1"}

    def script(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), action, str(self.directory), str(self.base), str(self.replicas)],
            capture_output=True,
            text=True,
            timeout=60,
        )


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def spare_port_base(count: int) -> int:
    """A base port with ``count`` free ports above it, and their cluster-bus ports (+10000) free too."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 29000 - count)
        ports = range(base, base + count)
        if all(_port_free(p) and _port_free(p + 10000) for p in ports):
            return base
    raise RuntimeError("no spare range of ports for a Redis Cluster")


def cluster_missing() -> str | None:
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install redis-server): no Redis Cluster to test on"
    return None


@contextmanager
def cluster_started(replicas: int = 1) -> Iterator[RedisClusterNodes]:
    """A Redis Cluster of 3 masters (+``replicas`` each) of the caller's own, stopped and removed after."""
    problem = cluster_missing()
    if problem:
        pytest.skip(problem)
    directory = Path(tempfile.mkdtemp(prefix="adsite-redis-cluster-"))
    last = ""
    for _ in range(3):  # a port taken between the check and the start: another range
        nodes = RedisClusterNodes(directory, spare_port_base(MASTERS * (1 + replicas)), replicas)
        done = nodes.script("start")
        if done.returncode == 0:
            break
        last = done.stdout + done.stderr
        nodes.script("stop")
    else:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"the Redis Cluster did not start: {last}")
    try:
        yield nodes
    finally:
        nodes.script("stop")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    """This run's Redis Cluster: 3 masters and 3 replicas on spare ports."""
    with cluster_started(replicas=1) as nodes:
        yield nodes
