"""Answers kept fresh on write (inference/serving/stored.py), on a real Redis: a read serves the stored answer
while it is current, and predicts live as soon as the visitor's features, the served model or the clock
moved on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from inference.events import EventRecord
from inference.serving.adapters import PriorAdapter, StoreAdapter
from inference.serving.deadline import Deadline
from inference.serving.predictor import Predictor, PredictorConfig
from inference.serving.stored import StoredAnswers
from inference.store import feature_store, serving_state_reader

pytestmark = pytest.mark.requires_redis

T0 = 1.7e9


class CountsModel:
    """A model double over the real read-out: ranks the visitor's all-time category counts; counts its calls."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.calls = 0

    def predict(self, features, *, now, top):
        self.calls += 1
        counts = features.user.counts if features.user is not None else {"c0": 1.0}
        total = sum(counts.values()) or 1.0
        return sorted(((c, v / (total + 1.0)) for c, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))[:top]


class Registry:
    def __init__(self) -> None:
        self.active: dict[str, object] = {}
        self.models: dict[str, CountsModel] = {}

    def publish(self, name: str, version: str) -> CountsModel:
        from tests.inference.serving.conftest import Active

        self.models[version] = CountsModel(version)
        self.active[name] = Active(version, Path("/nonexistent") / version)
        return self.models[version]

    def read(self) -> dict[str, object]:
        return dict(self.active)

    def load(self, name: str, artifact_dir: Path) -> CountsModel:
        return self.models[artifact_dir.name]


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 1000.0

    def __call__(self) -> float:
        return self.now


def events(user: str, *categories: str, at: float = T0) -> list[EventRecord]:
    return [EventRecord(user_id=user, ts=at + i, type="page_view", categories=(c,)) for i, c in enumerate(categories)]


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> str:
    """A Redis of the test's own: a redis-server of its own; on a Redis Cluster (the scale-out mode), the
    site's cluster emptied (a test that stops its Redis asks for ``private_redis`` itself)."""
    if settings.REDIS_CLUSTER:
        request.getfixturevalue("redis_client")
        return str(settings.REDIS_URL)
    return str(request.getfixturevalue("private_redis"))


@pytest.fixture
def setup(store_url):
    store = feature_store(url=store_url)
    registry = Registry()
    neural = registry.publish("neural", "neural-1")
    clock = Clock()
    adapter = StoreAdapter(serving_state_reader(url=store_url))
    predictor = Predictor(
        features=adapter, prior=PriorAdapter(adapter), loader=registry.load, registry_reader=registry.read,
        config=PredictorConfig(poll_seconds=0), clock=clock,
        answers=StoredAnswers(store, max_age_s=60.0, top=100, debounce_s=0.5),
    ).start(background=False)
    return store, registry, neural, clock, predictor


def stages(answer) -> list[str]:
    return [name for name, _ in answer.stage_ms]


def test_a_recomputed_answer_is_served_from_the_store_without_a_model_call(setup):
    store, _registry, neural, _clock, predictor = setup
    store.observe(events("ann", "sports", "sports", "travel"))
    live = predictor.predict("ann", deadline=Deadline(1000), top=2)
    assert stages(live) == ["stored", "features", "neural"]  # nothing stored yet: predicted live

    from inference.serving import metrics

    served_before = metrics.SERVED_TOTAL.labels("neural")._value.get()
    recomputed_before = metrics.ANSWERS_RECOMPUTED_TOTAL.labels("neural")._value.get()
    stored = predictor.answer_refresh("ann", deadline=Deadline(1000))
    assert stored is not None
    # a recompute is counted as one, not as an answer served to anyone
    assert metrics.SERVED_TOTAL.labels("neural")._value.get() == served_before
    assert metrics.ANSWERS_RECOMPUTED_TOTAL.labels("neural")._value.get() == recomputed_before + 1
    calls = neural.calls
    answer = predictor.predict("ann", deadline=Deadline(1000), top=2)
    assert neural.calls == calls  # no model call, no feature read-out
    assert stages(answer) == ["stored"]
    assert (answer.scores, answer.served_by, answer.model_version, answer.fallback_reason) == (
        live.scores, "neural", "neural-1", None)
    assert answer.as_dict()["confidence"] == live.as_dict()["confidence"]
    assert answer.as_dict()["categories"] == live.as_dict()["categories"]


def test_an_event_after_the_recompute_makes_the_next_read_predict_live(setup):
    store, _registry, _neural, _clock, predictor = setup
    store.observe(events("bob", "sports", "sports", "travel"))
    predictor.answer_refresh("bob", deadline=Deadline(1000))
    store.observe(events("bob", "travel", "travel", at=T0 + 10))  # travel now leads: the stored answer is stale
    answer = predictor.predict("bob", deadline=Deadline(1000), top=1)
    assert stages(answer) == ["stored", "features", "neural"]
    assert answer.scores[0][0] == "travel"


def test_a_stored_answer_of_a_version_no_longer_served_or_too_old_is_not_served(setup):
    store, registry, _neural, clock, predictor = setup
    store.observe(events("cat", "music", "music", "news"))
    predictor.answer_refresh("cat", deadline=Deadline(1000))
    clock.now += 61.0  # past ANSWERS_MAX_AGE_S
    assert stages(predictor.predict("cat", deadline=Deadline(1000), top=2))[0:2] == ["stored", "features"]

    predictor.answer_refresh("cat", deadline=Deadline(1000))
    assert stages(predictor.predict("cat", deadline=Deadline(1000), top=2)) == ["stored"]
    registry.publish("neural", "neural-2")
    predictor.refresh()
    answer = predictor.predict("cat", deadline=Deadline(1000), top=2)
    assert stages(answer) == ["stored", "features", "neural"] and answer.model_version == "neural-2"


def test_recomputes_are_debounced_per_visitor_and_flagged_again_once_claimed(setup):
    store, _registry, _neural, _clock, predictor = setup
    store.observe(events("dan", "sports") + events("eve", "news"))
    assert store.answers_schedule(["dan", "eve"], debounce_s=0.5) == ["dan", "eve"]
    assert store.answers_schedule(["dan", "eve", "fay"], debounce_s=0.5) == ["fay"]  # dan and eve wait already
    predictor.answer_refresh("dan", deadline=Deadline(1000))  # the task clears the flag first
    assert store.answers_schedule(["dan", "eve"], debounce_s=0.5) == ["dan"]


def test_forgetting_a_visitor_deletes_their_stored_answer(setup):
    store, _registry, _neural, _clock, predictor = setup
    store.observe(events("gus", "sports", "travel"))
    predictor.answer_refresh("gus", deadline=Deadline(1000))
    assert store.answer_read("gus")[1] is not None
    store.forget("gus")
    assert store.answer_read("gus") == (0, None)
    answer = predictor.predict("gus", deadline=Deadline(1000), top=2)
    assert (answer.served_by, answer.fallback_reason) == ("prior", "cold_start")


def test_the_version_counter_is_not_a_feature(setup):
    store, *_ = setup
    store.observe(events("hal", "sports"))
    assert "v" not in store.user_state("hal").sums
    assert store.answer_read("hal")[0] == 1


def test_a_store_gone_away_gives_the_prior_not_an_error(setup, private_redis):
    store, _registry, _neural, _clock, predictor = setup
    store.observe(events("ivy", "sports", "sports"))
    predictor.answer_refresh("ivy", deadline=Deadline(1000))
    port = private_redis.rsplit(":", 1)[1].split("/")[0]
    subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], capture_output=True, timeout=10, check=False)
    answer = predictor.predict("ivy", deadline=Deadline(1000), top=2)
    assert (answer.served_by, answer.fallback_reason) == ("prior", "error")


def test_the_accepting_request_never_waits_for_the_broker(setup, monkeypatch):
    """A broker that hangs stalls the publishing thread, not the caller; the recomputes go out once it answers."""
    import threading
    import time

    from inference.serving import stored
    from inference.tasks import answers_refresh

    store, *_ = setup
    release = threading.Event()
    sent: list[list[str]] = []

    def hung_broker(*, args, countdown, retry):
        release.wait(60)
        sent.append(list(args[0]))

    monkeypatch.setattr(answers_refresh, "apply_async", hung_broker)
    monkeypatch.setattr(stored, "publisher", stored.RecomputePublisher())
    assert stored.answers_refresh_schedule(store, ["amy", "ben"], debounce_s=0.5) == 2  # back at once
    assert stored.answers_refresh_schedule(store, ["amy", "cy"], debounce_s=0.5) == 1  # amy waits already
    assert sent == []
    release.set()
    deadline = time.monotonic() + 30
    while sum(len(batch) for batch in sent) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(user for batch in sent for user in batch) == ["amy", "ben", "cy"]
