"""The registry's blend: a training run builds the mean of the serving neural and gbdt versions, judges
it on its slice and serves it by its figure; it never serves beside member versions it does not hold.
Real (small) models, trained by the real pipeline."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import override_settings

from inference.models import model_load
from inference.registry import selectors, services
from inference.registry.models import ModelVersion
from inference.registry.run_lock import LOCK_KEY
from inference.registry.training import training_run_execute
from tests.inference.models.test_models import read_out
from tests.inference.streams import affinity_stream

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CATEGORIES = [f"c{i}" for i in range(6)]
SMALL = {"gbdt": {"objective": "binary", "max_rounds": 15}, "neural": {"max_epochs": 2}}


def events(*, since=None, until=None, chunk_size=50_000):
    yield affinity_stream(CATEGORIES, seed=1, step_s=600)


@pytest.fixture
def model_dir(tmp_path, data_sources):
    cache.delete(LOCK_KEY)
    data_sources(events=events, categories=lambda: list(CATEGORIES))
    with override_settings(INFERENCE={"MODEL_DIR": str(tmp_path), "HYPERPARAMETERS": SMALL}):
        yield tmp_path


def active(algorithm: str) -> str | None:
    row = selectors.model_version_active(algorithm=algorithm)
    return row.version if row else None


def test_a_run_serves_the_blend_of_the_versions_it_activated_judged_on_its_slice(model_dir):
    run = training_run_execute(algorithm="all", activate="always")
    assert run.status == "succeeded", run.error
    blend = ModelVersion.objects.get(algorithm="blend")
    assert blend.status == "active" and run.outcome["blend"]["version"] == blend.version
    members = {"neural": active("neural"), "gbdt": active("gbdt")}
    assert blend.hyperparameters["member_versions"] == members
    # judged on the same slice as its members, beside the same baselines; the chain orders by that figure
    results = blend.metrics["results"]
    assert {"model", "decayed", "frequency", "recent", "popularity"} <= set(results)
    assert blend.validation_score == results["model"]["ndcg@5"] == run.outcome["blend"]["ndcg@5"]
    neural = ModelVersion.objects.get(version=members["neural"]).metrics["results"]
    assert results["decayed"]["ndcg@5"] == neural["decayed"]["ndcg@5"]
    # the artifact holds the members as they serve (refitted on every event, like the versions it names)
    loaded = model_load(model_dir / blend.artifact_path)
    user, population = read_out(next(events()), "u3")
    for member in loaded.members:
        serving = model_load(model_dir / members[member.algorithm])
        assert member.predict(user, population, now=user.now, top=6) == serving.predict(
            user, population, now=user.now, top=6
        )
    assert set(selectors.active_model_versions()) >= {"blend", "neural", "gbdt"}


def test_a_new_member_version_replaces_the_blend_and_a_rollback_withdraws_it(model_dir):
    training_run_execute(algorithm="all", activate="always")
    first = active("blend")
    neural = active("neural")
    run = training_run_execute(algorithm="gbdt", activate="always")  # the network keeps serving
    assert ModelVersion.objects.get(version=first).status == "retired"
    second = ModelVersion.objects.get(version=active("blend"))
    assert second.hyperparameters["member_versions"] == {"neural": neural, "gbdt": active("gbdt")}
    assert run.outcome["blend"]["version"] == second.version
    # an operator rolls LightGBM back: the blend holding the newer one must not serve on
    services.model_version_rollback(algorithm="gbdt", actor="test")
    assert active("blend") is None
    retired = second.activations.filter(action="retire").get()
    assert "gbdt serves" in retired.reason and second.hyperparameters["member_versions"]["gbdt"] in retired.reason


def test_a_run_with_the_same_members_judges_the_blend_again_instead_of_building_another(model_dir):
    training_run_execute(algorithm="all", activate="always")
    blend = active("blend")
    services.model_version_score(version=blend, score=0.01)
    run = training_run_execute(algorithm="all", activate="never")  # nothing new serves
    assert active("blend") == blend and ModelVersion.objects.filter(algorithm="blend").count() == 1
    assert run.outcome["blend"]["reason"].startswith("the same members, judged again")
    assert ModelVersion.objects.get(version=blend).validation_score == run.outcome["blend"]["ndcg@5"] > 0.01


def test_no_blend_without_both_members_or_when_it_is_off(model_dir):
    run = training_run_execute(algorithm="gbdt", activate="always")
    assert "blend" not in run.outcome and not ModelVersion.objects.filter(algorithm="blend").exists()
    with override_settings(INFERENCE={"MODEL_DIR": str(model_dir), "HYPERPARAMETERS": SMALL, "BLEND": False}):
        run = training_run_execute(algorithm="all", activate="always")
    assert "blend" not in run.outcome and not ModelVersion.objects.filter(algorithm="blend").exists()
