"""``StageWatch`` on a Dask ``LocalCluster`` of 2 worker processes: a stage whose tasks are pinned to their
workers and block (as LightGBM's ring does when a peer dies before it links, or DDP ranks in a
collective) ends with ``WorkerLost`` soon after one of its workers is killed, instead of waiting for
tasks that can never run again (a task pinned to a dead worker stays in Dask's ``no-worker`` state for
ever); and progress that tasks report reaches the driver.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from inference.training.cluster import (
    StageWatch,
    WorkerLost,
    progress_report,
    training_engine,
    worker_addresses,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def dask_client() -> Iterator[Any]:
    with training_engine("dask", workers=2) as engine:
        yield engine.client


def _blocked(topic: str) -> None:
    progress_report(topic, waiting=os.getpid())
    time.sleep(3600)  # a peer that will never answer


def _pid() -> int:
    return os.getpid()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["wait", "run"])
def test_a_killed_worker_ends_a_blocked_stage(dask_client: Any, how: str) -> None:
    workers = worker_addresses(dask_client)
    pids = dask_client.run(_pid)
    victim = workers[0]
    heard: list[dict[str, Any]] = []
    # the run() form finds the stage's tasks by key, as it finds lightgbm.dask's _train_part tasks
    with StageWatch(
        dask_client, stage="a blocked stage", on_progress=heard.append, cancel_prefixes=("_blocked-",)
    ) as watch:
        futures = [
            dask_client.submit(_blocked, watch.topic, workers=[w], allow_other_workers=False, pure=False)
            for w in workers
        ]

        def kill_when_both_wait() -> None:
            while len(dask_client.processing().get(victim, ())) < 1 or len(heard) < 2:
                time.sleep(0.2)
            os.kill(pids[victim], signal.SIGKILL)

        threading.Thread(target=kill_when_both_wait, daemon=True).start()
        with pytest.raises(WorkerLost, match="left the cluster during a blocked stage"):
            if how == "wait":
                watch.wait(futures)
            else:
                watch.run(lambda: dask_client.gather(futures))

    # both tasks had reported (from their worker processes) before the kill
    assert sorted(m["waiting"] for m in heard) == sorted(pids.values())
    assert all(f.cancelled() for f in futures)  # nothing of the stage is left waiting on the scheduler
