"""Serving with the real models, registry and adapters (small models trained once per module)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from django.test import override_settings

from inference.events import EventRecord
from inference.features import population_features, states_replay, user_features
from inference.registry import services
from inference.serving.adapters import ModelLoaderAdapter, PriorAdapter, StoreAdapter
from inference.serving.deadline import Deadline
from inference.serving.predictor import Predictor, PredictorConfig
from inference.serving.wiring import registry_active_versions
from tests.inference.streams import affinity_stream

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CATEGORIES = [f"c{i}" for i in range(6)]


def stream() -> list[EventRecord]:
    return affinity_stream(CATEGORIES, seed=0)


def thin_visitor() -> list[EventRecord]:
    """Two page views by a visitor the training stream never held (after it ends)."""
    last = stream()[-1].ts
    return [
        EventRecord(user_id="thin", ts=last + i, type="page_view", categories=("c2",), item_id=f"t{i}")
        for i in (1, 2)
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    from inference.models import model_train

    root = tmp_path_factory.mktemp("trained")
    small = {"gbdt": {"objective": "binary", "max_rounds": 15}, "neural": {"max_epochs": 2}}
    out = {}
    for algorithm, params in small.items():
        model = model_train(
            algorithm=algorithm, events=stream(), categories=CATEGORIES, hyperparameters=params
        )
        model.save(root / algorithm)
        out[algorithm] = root / algorithm
    return out


@pytest.fixture
def model_dir(tmp_path):
    with override_settings(INFERENCE={"MODEL_DIR": str(tmp_path)}):
        yield tmp_path


def publish(trained: dict[str, Path], model_dir: Path, algorithm: str, version: str) -> Path:
    shutil.copytree(trained[algorithm], model_dir / version)
    services.model_version_register(algorithm=algorithm, version=version, artifact_path=version)
    services.model_version_activate(version=version)
    return model_dir / version


@pytest.fixture
def build():
    events = stream()
    states, population_state = states_replay([*events, *thin_visitor()])  # the store's read-out
    now = events[-1].ts + 60
    users = {user_id: user_features(state, now) for user_id, state in states.items()}
    population = population_features(population_state, now)
    made = []

    def make() -> Predictor:
        store = StoreAdapter(lambda user_id, now=None: (users.get(user_id), population))
        predictor = Predictor(
            features=store,
            prior=PriorAdapter(store),
            loader=ModelLoaderAdapter(),
            registry_reader=registry_active_versions,
            config=PredictorConfig(poll_seconds=0),
        ).start(background=False)
        made.append(predictor)
        return predictor

    yield make
    for predictor in made:
        predictor.stop()


def test_real_neural_serves_and_gbdt_follows_when_neural_is_withdrawn(trained, model_dir, build):
    publish(trained, model_dir, "gbdt", "gbdt-a")
    publish(trained, model_dir, "neural", "neural-a")
    predictor = build()
    answer = predictor.predict("u3", deadline=Deadline(1000), top=3)
    assert (answer.served_by, answer.model_version, answer.fallback_reason) == ("neural", "neural-a", None)
    assert len(answer.scores) == 3 and all(0 < s < 1 for _, s in answer.scores)
    from inference.registry.models import ModelVersion

    ModelVersion.objects.filter(version="neural-a").update(status="retired")  # no neural version active
    predictor.refresh()
    answer = predictor.predict("u3", deadline=Deadline(1000), top=3)
    assert (answer.served_by, answer.fallback_reason) == ("gbdt", "no_model")


def test_corrupt_real_artifact_falls_through_to_the_prior(trained, model_dir, build):
    directory = publish(trained, model_dir, "gbdt", "gbdt-a")
    (directory / "booster.txt").write_text("this is not a booster")
    predictor = build()
    assert "gbdt" in predictor.load_errors()
    answer = predictor.predict("u3", deadline=Deadline(1000), top=3)
    # the reason is the failure of a ranker that was tried, before the absence of a neural version
    assert (answer.served_by, answer.fallback_reason) == ("prior", "error")
    assert answer.scores  # the prior still answers from the population and the user's counts


def test_activation_in_the_registry_is_picked_up_on_refresh(trained, model_dir, build):
    publish(trained, model_dir, "gbdt", "gbdt-a")
    predictor = build()
    publish(trained, model_dir, "gbdt", "gbdt-b")
    assert predictor.refresh()
    assert predictor.loaded() == {"gbdt": "gbdt-b"}
    assert predictor.predict("u4", deadline=Deadline(1000)).model_version == "gbdt-b"


def test_cold_user_and_population_only_prior(trained, model_dir, build):
    predictor = build()
    answer = predictor.predict("never-seen", deadline=Deadline(1000), top=2)
    assert (answer.served_by, answer.fallback_reason) == ("prior", "cold_start")
    assert len(answer.scores) == 2


def test_a_process_started_while_the_store_is_down_answers_with_the_models_saved_popularity(trained, model_dir):
    """No population was ever read (the store has been down since start-up): the prior answers with the
    popularity saved with the loaded model, not with an empty list."""
    from inference.store import FeatureStoreUnavailable

    def down(user_id, now=None):
        raise FeatureStoreUnavailable("feature store read failed: Connection refused")

    publish(trained, model_dir, "gbdt", "gbdt-1")
    store = StoreAdapter(down)
    predictor = Predictor(
        features=store,
        prior=PriorAdapter(store),
        loader=ModelLoaderAdapter(on_loaded=store.model_loaded),
        registry_reader=registry_active_versions,
        config=PredictorConfig(poll_seconds=0),
    ).start(background=False)
    try:
        answer = predictor.predict("u1", deadline=Deadline(1000), top=3)
    finally:
        predictor.stop()
    assert (answer.served_by, answer.fallback_reason) == ("prior", "error")
    from inference.models import model_load

    popularity = model_load(trained["gbdt"]).popularity
    assert len(answer.scores) == 3
    assert {c for c, _ in answer.scores} <= set(popularity)
    # the most popular category of the saved table leads (the prior blends nothing else for an unknown user)
    assert answer.scores[0][0] == max(sorted(popularity), key=lambda c: popularity[c])


def test_answers_carry_calibrated_probabilities_and_say_how_much_history_they_knew(trained, model_dir, build):
    from inference.models import model_load

    publish(trained, model_dir, "neural", "neural-a")
    predictor = build()
    answer = predictor.predict("u3", deadline=Deadline(1000), top=3)
    assert answer.served_by == "neural"
    body = answer.as_dict()
    # the probabilities are the saved model's calibration over the user's candidates, one per category
    model = model_load(trained["neural"])
    assert model.calibration is not None and model.calibration.input == "log_softmax"
    probabilities = [item["probability"] for item in body["categories"]]
    assert all(0.0 < p < 1.0 for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)  # monotone: the ranking is kept
    assert body["confidence"] == {
        "history": "established", "history_events": answer.history_events, "from_prior": False, "calibrated": True
    }
    assert answer.history_events > 5

    thin = predictor.predict("thin", deadline=Deadline(1000), top=3).as_dict()
    assert thin["confidence"]["history"] == "thin" and thin["confidence"]["history_events"] == 2

    cold = predictor.predict("never-seen", deadline=Deadline(1000), top=3).as_dict()
    assert cold["confidence"] == {"history": "cold", "history_events": 0, "from_prior": True, "calibrated": True}
    assert cold["fallback_reason"] == "cold_start"
    # the prior reads a cold visitor's population share as a per-event chance over the next 10 events
    prior = predictor.predict("never-seen", deadline=Deadline(1000), top=6)
    for (_, score), probability in zip(prior.scores, prior.probabilities, strict=True):
        share = math.log(score / (1.0 - score))  # the prior's score is a logistic of its share
        assert probability == pytest.approx(1.0 - (1.0 - share) ** 10)


def publish_blend(trained: dict[str, Path], model_dir: Path, version: str) -> Path:
    from inference.models import model_load
    from inference.models.blend import BlendModel

    BlendModel([model_load(trained["neural"]), model_load(trained["gbdt"])]).save(model_dir / version)
    services.model_version_register(
        algorithm="blend", version=version, artifact_path=version,
        hyperparameters={"member_versions": {"neural": "neural-a", "gbdt": "gbdt-a"}},
    )
    services.model_version_activate(version=version)
    return model_dir / version


def test_the_blend_answers_first_with_the_mean_of_what_its_members_answer(trained, model_dir, build, tmp_path):
    from inference.models import model_load
    from inference.serving.fastpath import accelerate

    publish(trained, model_dir, "gbdt", "gbdt-a")
    publish(trained, model_dir, "neural", "neural-a")
    publish_blend(trained, model_dir, "blend-a")
    predictor = build()
    assert predictor.loaded() == {"blend": "blend-a", "neural": "neural-a", "gbdt": "gbdt-a"}
    answer = predictor.predict("u3", deadline=Deadline(1000), top=6)
    assert (answer.served_by, answer.model_version, answer.fallback_reason) == ("blend", "blend-a", None)
    assert answer.history == "established" and answer.shares()  # read like a trained model's answer
    # the same read-out as the predictor's store (the ``build`` fixture)
    events = stream()
    states, population_state = states_replay([*events, *thin_visitor()])
    now = events[-1].ts + 60
    user, population = user_features(states["u3"], now), population_features(population_state, now)
    mean: dict[str, float] = {}
    for name in ("neural", "gbdt"):
        own = model_load(model_dir / f"{name}-a").predict(user, population, now=now, top=6)
        for (category, _), p in zip(own, own.probabilities, strict=True):
            mean[category] = mean.get(category, 0.0) + p / 2
    served = dict(zip((c for c, _ in answer.scores), answer.probabilities, strict=True))
    assert served == pytest.approx(mean, abs=1e-5)
    # the members' fast paths (lleaves, ONNX Runtime) answer what the plain models answer
    plain = model_load(model_dir / "blend-a")
    fast = accelerate(model_load(model_dir / "blend-a"), cache_dir=tmp_path / "compiled")
    assert fast.serving_path.startswith("neural:") and "gbdt:" in fast.serving_path
    got = fast.predict(user, population, now=now, top=6)
    expected = plain.predict(user, population, now=now, top=6)
    assert [c for c, _ in got] == [c for c, _ in expected]
    assert list(got.probabilities) == pytest.approx(list(expected.probabilities), abs=1e-4)
