"""The whole Redis-facing suite (every test marked ``requires_redis``) against a real Redis Cluster of 3 masters.

The suite runs in a pytest of its own, in the scale-out mode's environment: ``REDIS_URL`` naming a node of
this run's cluster with ``REDIS_CLUSTER=1``, the machine's PostgreSQL (a test database of its own) and a
RabbitMQ virtual host of its own as the Celery broker. The tests ask the code for their key names, so the
same tests check one Redis (``make test-services``) and the cluster (here). Only the tests that break a
single redis-server of their own (pause or kill it) skip there: the cluster's faults (a master killed, a
slot moved) are this folder's own tests.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

from tests.scaleout.conftest import ROOT, RedisClusterNodes

pytestmark = [pytest.mark.scaleout, pytest.mark.timeout(900)]

POSTGRES = os.environ.get("REHEARSAL_POSTGRES", "postgres://postgres@127.0.0.1:5432")
SKIP_REASON = "breaks a single private redis-server; on a cluster see tests/scaleout"


def _services_missing() -> str | None:
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed: the suite's Celery broker is a RabbitMQ virtual host of its own"
    for port, what in ((5432, "PostgreSQL"), (5672, "RabbitMQ")):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return f"{what} does not answer on 127.0.0.1:{port}"
    return None


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120)


def test_the_redis_facing_suite_passes_on_a_3_master_cluster(redis_cluster: RedisClusterNodes) -> None:
    problem = _services_missing()
    if problem:
        pytest.skip(problem)
    name = f"adsite_cluster_suite_{uuid.uuid4().hex[:8]}"
    assert _rabbitmqctl("add_vhost", name).returncode == 0
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    env = {
        **os.environ,
        **redis_cluster.env,
        "DATABASE_URL": f"{POSTGRES}/{name}",  # pytest-django makes and drops test_<name>
        "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{name}",
        "ADSITE_REQUIRE_SERVICES": "1",  # an unreachable service fails, never skips
    }
    env.pop("TRACKING_STREAM_SHARDS", None)  # the scale-out default: 8 shards
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-m", "requires_redis", "-p", "no:randomly", "-rsfE",
             "--timeout", "300", "--create-db", "tests"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=840,
        )
    finally:
        _rabbitmqctl("delete_vhost", name)
    out = done.stdout + done.stderr
    failures = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert done.returncode == 0, "\n".join([*failures, out[-8000:]])
    summary = out.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", summary)}
    assert counts.get("failed", 0) == 0 and not counts.get("error") and not counts.get("errors"), summary
    assert counts.get("passed", 0) >= 30, summary  # the suite ran, not a collection that selected nothing
    # every skip is a test that breaks a single redis-server of its own, none for a missing service
    reasons = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert all(SKIP_REASON in line for line in reasons), reasons
