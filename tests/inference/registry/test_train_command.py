"""``manage.py train`` and the ``inference.train_models`` task end to end, with the real (small) models.

The stored events and the site's categories answer inference's requests (``stored_events_requested``,
``categories_requested``) from functions of this module instead of tracking's and the content app's
receivers (the ``data_sources`` fixture).
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from inference.registry.models import ModelVersion, TrainingRun
from inference.registry.run_lock import LOCK_KEY
from tests.inference.streams import affinity_stream

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CATEGORIES = [f"c{i}" for i in range(6)]


def event_records_iter(*, since=None, until=None, chunk_size=50_000):
    events = affinity_stream(CATEGORIES, seed=1, step_s=600)
    yield events[:700]
    yield events[700:]


def category_slugs():
    return list(CATEGORIES)


def no_events(*, since=None, until=None, chunk_size=50_000):
    return iter(())


@pytest.fixture
def settings_for_training(tmp_path, data_sources):
    cache.delete(LOCK_KEY)
    data_sources(events=event_records_iter, categories=category_slugs)
    with override_settings(
        INFERENCE={
            "MODEL_DIR": str(tmp_path),
            "HYPERPARAMETERS": {
                "gbdt": {"objective": "binary", "max_rounds": 15},
                "neural": {"max_epochs": 2},
            },
        }
    ):
        yield tmp_path


def test_train_command_registers_gbdt_and_serves_it_only_if_it_beats_the_best_baseline(settings_for_training):
    out, err = StringIO(), StringIO()
    call_command("train", "--algorithm", "gbdt", stdout=out, stderr=err)
    version = ModelVersion.objects.get(algorithm="gbdt")
    results = version.metrics["results"]
    assert set(results) >= {"model", "popularity", "frequency", "recent", "decayed"}
    best = max(("decayed", "frequency", "recent", "popularity"), key=lambda n: results[n]["ndcg@5"])
    beats = results["model"]["ndcg@5"] >= results[best]["ndcg@5"]
    assert version.status == ("active" if beats else "candidate")
    assert f"gbdt: {version.version} {'activated' if beats else 'registered as candidate'}" in out.getvalue()
    ranker = ModelVersion.objects.get(algorithm=best)  # the best baseline serves after (or instead of) it
    assert ranker.status == "active"
    assert f"baseline: {ranker.version} activated" in out.getvalue()
    assert (settings_for_training / version.version / "manifest.json").exists()
    assert TrainingRun.objects.get().status == "succeeded"


def test_train_command_with_no_events_fails_and_says_so(settings_for_training, data_sources):
    data_sources(events=no_events)
    with override_settings(INFERENCE={"MODEL_DIR": str(settings_for_training)}):
        with pytest.raises(CommandError, match="nothing to train on"):
            call_command("train", "--algorithm", "gbdt", stdout=StringIO(), stderr=StringIO())
    assert TrainingRun.objects.get().status == "failed"
    assert ModelVersion.objects.count() == 0


def test_task_trains_with_json_arguments_and_never_activates_when_told(settings_for_training):
    from inference.registry.tasks import train_models

    result = train_models.apply(kwargs={"algorithm": "neural", "activate": "never"}).get()
    assert result["status"] == "succeeded"
    assert set(ModelVersion.objects.values_list("status", flat=True)) == {"candidate"}
