"""Shadow mode with the real models, registry and adapters: a neural candidate shadows the serving
gbdt version, chosen in the registry and read on the predictor's poll."""

from __future__ import annotations

import shutil

import pytest
from prometheus_client import REGISTRY

from inference.registry import services
from inference.serving.adapters import ModelLoaderAdapter, PriorAdapter, StoreAdapter
from inference.serving.deadline import Deadline
from inference.serving.predictor import Predictor, PredictorConfig
from inference.serving.wiring import registry_active_versions, registry_shadow_version
from tests.inference.serving.test_real_models import (  # noqa: F401 (fixtures)
    model_dir,
    publish,
    stream,
    trained,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def users():
    from inference.features import population_features, states_replay, user_features

    events = stream()
    states, population_state = states_replay(events)
    now = events[-1].ts + 60
    return {u: user_features(s, now) for u, s in states.items()}, population_features(population_state, now)


def predictor_with(users, *, shadow: bool) -> Predictor:
    by_user, population = users
    store = StoreAdapter(lambda user_id, now=None: (by_user.get(user_id), population))
    return Predictor(
        features=store,
        prior=PriorAdapter(store),
        loader=ModelLoaderAdapter(),
        registry_reader=registry_active_versions,
        config=PredictorConfig(poll_seconds=0),
        shadow_reader=registry_shadow_version if shadow else None,
    ).start(background=False)


def test_a_real_neural_candidate_shadows_gbdt_and_the_answers_stay_the_same(
    trained,  # noqa: F811
    model_dir,  # noqa: F811
    users,
):
    publish(trained, model_dir, "gbdt", "gbdt-serving")
    shutil.copytree(trained["neural"], model_dir / "neural-candidate")
    services.model_version_register(
        algorithm="neural", version="neural-candidate", artifact_path="neural-candidate"
    )
    plain = predictor_with(users, shadow=False)
    services.shadow_config_set(version="neural-candidate", sample_rate=1.0, top_k=3)
    shadowed = predictor_with(users, shadow=True)
    try:
        assert shadowed.shadow_status()["version"] == "neural-candidate"
        assert shadowed.loaded() == {"gbdt": "gbdt-serving"}  # loaded beside, never serving
        for user in ("u1", "u2", "u3", "u4"):
            a = plain.predict(user, deadline=Deadline(1000), top=3)
            b = shadowed.predict(user, deadline=Deadline(1000), top=3)
            assert (b.served_by, b.model_version, b.scores) == (a.served_by, a.model_version, a.scores)
            assert b.served_by == "gbdt"
        labels = {"version": "neural-candidate", "compared_with": "gbdt"}
        assert REGISTRY.get_sample_value("inference_shadow_agreement_count", labels) == 4
        mean = REGISTRY.get_sample_value("inference_shadow_agreement_sum", labels) / 4
        assert 0.0 <= mean <= 1.0
    finally:
        plain.stop()
        shadowed.stop()
