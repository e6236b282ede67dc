"""Serving at an injected time, and the baseline rankers in the chain (real store, registry, loader)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from inference.events import EventRecord
from inference.models import baseline_ranker_train
from inference.registry import services
from inference.serving.adapters import ModelLoaderAdapter, PriorAdapter, StoreAdapter
from inference.serving.deadline import Deadline
from inference.serving.predictor import Predictor, PredictorConfig
from inference.serving.wiring import registry_active_versions
from inference.store.memory import MemoryFeatureStore

pytestmark = pytest.mark.django_db

T0 = 1_500_000_000.0
DAY = 86_400.0


def _events() -> list[EventRecord]:
    # "travel" often, long ago; "sports" twice, just before the user left
    old = [
        EventRecord(user_id="u", ts=T0 + i * 60, type="page_view", categories=("travel",)) for i in range(6)
    ]
    new = [
        EventRecord(user_id="u", ts=T0 + 20 * DAY + i * 60, type="page_view", categories=("sports",))
        for i in range(2)
    ]
    others = [
        EventRecord(user_id=f"p{i}", ts=T0 + i, type="page_view", categories=("news",)) for i in range(9)
    ]
    return sorted(old + new + others, key=lambda e: e.ts)


class Recorder:
    """A serving model double that notes the time of the features it was handed."""

    score_range = (0.0, 1.0)

    def __init__(self) -> None:
        self.feature_times: list[float] = []

    def predict(self, features, *, now, top):
        if features.user is not None:
            self.feature_times.append(features.user.now)
        return [("sports", 0.9)]


def _predictor(store: MemoryFeatureStore, loader, clock) -> Predictor:
    adapter = StoreAdapter(lambda user_id, now=None: _read(store, user_id, now))
    return Predictor(
        features=adapter,
        prior=PriorAdapter(adapter),
        loader=loader,
        registry_reader=registry_active_versions,
        config=PredictorConfig(poll_seconds=0),
        clock=clock,
    ).start(background=False)


def _read(store: MemoryFeatureStore, user_id: str, now: float | None):
    found = store.read(user_id, now=now)
    return (None if found.user.is_cold else found.user), found.population


def test_the_store_is_read_at_the_predictors_clock_not_the_wall_clock(tmp_path):
    store = MemoryFeatureStore()
    store.observe(_events())
    recorder = Recorder()
    with override_settings(INFERENCE={"MODEL_DIR": str(tmp_path)}):
        (tmp_path / "gbdt-x").mkdir()
        services.model_version_register(algorithm="gbdt", version="gbdt-x", artifact_path="gbdt-x")
        services.model_version_activate(version="gbdt-x")
        at = T0 + 21 * DAY
        predictor = _predictor(store, lambda name, directory: recorder, clock=lambda: at)
        predictor.predict("u", deadline=Deadline(1000))
        predictor.predict("u", deadline=Deadline(1000), now=at + 7 * DAY)  # an explicit time wins
    assert recorder.feature_times == [at, at + 7 * DAY]


def test_the_active_baseline_ranker_answers_when_no_learned_model_serves(tmp_path):
    store = MemoryFeatureStore()
    events = _events()
    store.observe(events)
    with override_settings(INFERENCE={"MODEL_DIR": str(tmp_path)}):
        for name in ("decayed", "frequency"):
            baseline_ranker_train(
                algorithm=name, events=events, categories=["travel", "sports", "news"]
            ).save(tmp_path / name)
            services.model_version_register(algorithm=name, version=f"{name}-1", artifact_path=name)
        services.model_version_activate(version="decayed-1")
        predictor = _predictor(store, ModelLoaderAdapter(), clock=lambda: T0 + 400 * DAY)
        answer = predictor.predict("u", deadline=Deadline(1000), top=3)
        # a year after they left, the decayed share from their last event still ranks what they read last
        assert (answer.served_by, answer.model_version, answer.fallback_reason) == (
            "decayed",
            "decayed-1",
            "no_model",
        )
        assert [c for c, _ in answer.scores][:2] == ["sports", "travel"]

        services.model_version_withdraw(version="decayed-1")
        services.model_version_activate(version="frequency-1")
        predictor.refresh()
        answer = predictor.predict("u", deadline=Deadline(1000), top=3)
        assert (answer.served_by, [c for c, _ in answer.scores][:2]) == ("frequency", ["travel", "sports"])
        assert predictor.predict("stranger", deadline=Deadline(1000)).served_by == "prior"  # cold start
