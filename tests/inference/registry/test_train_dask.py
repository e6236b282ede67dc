"""``manage.py train --engine dask`` on a Dask ``LocalCluster`` of 2 worker processes: the training set
built by partitions of visitors, LightGBM through lightgbm.dask and the neural model through
torch.distributed (one rank per worker), registered as the local engine's are, the command showing the
run's progress (partitions, LightGBM rounds, network epochs); a worker killed in the middle of either
model fails the run cleanly.
"""

from __future__ import annotations

import json
import re
import threading
import time
from io import StringIO
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from inference.models import model_load
from inference.registry import services
from inference.registry.models import ModelVersion, TrainingRun
from inference.registry.run_lock import LOCK_KEY
from tests.inference.streams import affinity_stream

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CATEGORIES = [f"c{i}" for i in range(6)]


def event_records_iter(*, since=None, until=None, chunk_size=50_000):
    yield affinity_stream(CATEGORIES, seed=1, step_s=600)


def category_slugs():
    return list(CATEGORIES)


@pytest.fixture
def dask_settings(tmp_path: Path, data_sources):
    cache.delete(LOCK_KEY)
    data_sources(events=event_records_iter, categories=category_slugs)
    with override_settings(
        INFERENCE={
            "MODEL_DIR": str(tmp_path / "models"),
            "TRAINING_SHARD_DIR": str(tmp_path),
            "REFIT_ON_ALL": False,
            "HYPERPARAMETERS": {
                "gbdt": {"objective": "binary", "max_rounds": 12, "early_stopping_rounds": 5},
                "neural": {"max_epochs": 2, "ddp_timeout_s": 60},
            },
        }
    ):
        yield tmp_path


def test_train_engine_dask_trains_both_models_on_two_workers_and_keeps_the_facts(dask_settings: Path) -> None:
    out = dask_settings / "facts.json"
    shown = StringIO()
    call_command(
        "train", "--engine", "dask", "--workers", "2", "--activate", "always", "--json", str(out),
        stdout=StringIO(), stderr=shown,
    )

    # the progress bar moved through each distributed stage
    progress = shown.getvalue()
    assert re.search(r"partition \d+/\d+ done", progress)
    assert re.search(r"gbdt binary: round \d+/12", progress)
    assert re.search(r"neural: epoch [12]/2, validation NDCG@5 0\.\d{4}", progress)

    facts = json.loads(out.read_text())
    assert facts["status"] == "succeeded"
    assert (facts["engine"], facts["workers"], facts["partitions"]) == ("dask", 2, 8)
    assert facts["training_set"]["rows"] > 100 and facts["training_set"]["partitions"] == 8
    assert facts["gbdt"]["engine"] == "lightgbm.dask" and facts["gbdt"]["workers"] == 2
    assert facts["neural"]["engine"] == "torch.distributed" and facts["neural"]["world_size"] == 2
    assert facts["neural"]["backend"] == "gloo"
    for algorithm in ("gbdt", "neural"):
        version = ModelVersion.objects.get(algorithm=algorithm, status="active")
        assert version.version == facts[algorithm]["version"]
        kept = version.metrics["engine"]
        assert kept["engine"] == "dask" and kept[algorithm]["engine"] == facts[algorithm]["engine"]
        model = model_load(dask_settings / "models" / version.artifact_path)  # the artifacts as always
        assert model.predict(None, None, now=0.0, top=3)
    # the shards of the run are gone with it
    assert not list(dask_settings.glob("adsite-shards-*"))


def _kill_a_worker_when_ranks_start(shards: Path, killed: list[int]) -> None:
    """Once the neural ranks are being launched (the validation slice is written for them), kill one
    Dask worker process (a child of this process started by multiprocessing's spawn)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if list(shards.glob("adsite-shards-*/validation-*.parquet")):
            time.sleep(3)  # the ranks are in their epochs
            for child in psutil.Process().children(recursive=True):
                if "spawn_main" in " ".join(child.cmdline()):
                    child.kill()
                    killed.append(child.pid)
                    return
        time.sleep(0.2)


def test_a_worker_killed_mid_training_fails_the_run_and_the_active_version_keeps_serving(
    dask_settings: Path,
) -> None:
    before = services.model_version_register(algorithm="neural", version="neural-before", artifact_path="neural-before")
    services.model_version_activate(version=before.version, actor="test")
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_worker_when_ranks_start, args=(dask_settings, killed), daemon=True)
    killer.start()

    with override_settings(
        INFERENCE={
            **settings.INFERENCE,
            # epochs enough that the kill lands while the ranks train (two epochs can end within the
            # killer's 3 s on a quiet host, and the run then succeeds before any rank is lost)
            "HYPERPARAMETERS": {**settings.INFERENCE["HYPERPARAMETERS"],
                                "neural": {"max_epochs": 500, "patience": 500, "ddp_timeout_s": 60}},
        }
    ), pytest.raises(CommandError, match="training failed .the active versions keep serving."):
        call_command(
            "train", "--engine", "dask", "--workers", "2", "--algorithm", "neural",
            stdout=StringIO(), stderr=StringIO(),
        )

    assert killed
    run = TrainingRun.objects.get()
    assert run.status == "failed" and run.error
    assert ModelVersion.objects.get(version="neural-before").status == "active"
    assert not ModelVersion.objects.filter(algorithm="neural").exclude(version="neural-before").exists()


def _kill_a_worker_when_shown(shown: StringIO, pattern: str, killed: list[int]) -> None:
    """Once the command's progress shows ``pattern``, kill one Dask worker process."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if re.search(pattern, shown.getvalue()):
            for child in psutil.Process().children(recursive=True):
                if "spawn_main" in " ".join(child.cmdline()):
                    child.kill()
                    killed.append(child.pid)
                    return
        time.sleep(0.1)


@pytest.mark.timeout(280)  # LightGBM's own wait for a lost peer was 120 minutes: the run must end long before
def test_a_worker_killed_while_lightgbm_trains_fails_the_run_and_the_active_version_keeps_serving(
    dask_settings: Path,
) -> None:
    before = services.model_version_register(algorithm="gbdt", version="gbdt-before", artifact_path="gbdt-before")
    services.model_version_activate(version=before.version, actor="test")
    shown: StringIO = StringIO()
    killed: list[int] = []
    killer = threading.Thread(
        target=_kill_a_worker_when_shown, args=(shown, r"gbdt binary: round \d+/", killed), daemon=True
    )
    killer.start()

    with override_settings(
        INFERENCE={
            **settings.INFERENCE,
            # rounds enough that the kill lands while the ring trains
            "HYPERPARAMETERS": {"gbdt": {"objective": "binary", "max_rounds": 5000, "early_stopping_rounds": 5000}},
        }
    ), pytest.raises(CommandError, match="training failed .the active versions keep serving."):
        call_command(
            "train", "--engine", "dask", "--workers", "2", "--algorithm", "gbdt",
            stdout=StringIO(), stderr=shown,
        )

    assert killed
    run = TrainingRun.objects.get()
    assert run.status == "failed" and ("lightgbm" in run.error.lower() or "left the cluster" in run.error)
    assert ModelVersion.objects.get(version="gbdt-before").status == "active"
    assert not ModelVersion.objects.filter(algorithm="gbdt").exclude(version="gbdt-before").exists()
