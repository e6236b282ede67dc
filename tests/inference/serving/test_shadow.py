"""Shadow mode in the predictor: a candidate scores a sample of the served requests after the answer is
computed, is never served, and its failures and slowness never reach the served answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from inference.serving.deadline import Deadline
from inference.serving.predictor import Predictor, PredictorConfig, topk_overlap
from tests.inference.serving.conftest import FakeModel, FakePrior


@dataclass(frozen=True)
class Shadow:
    algorithm: str
    version: str
    artifact_dir: Path
    sample_rate: float
    top_k: int


class ShadowConfigDouble:
    def __init__(self) -> None:
        self.current: Shadow | None = None
        self.fail = False

    def read(self) -> Shadow | None:
        if self.fail:
            raise ConnectionError("registry unreachable")
        return self.current


class FixedModel(FakeModel):
    """Answers a fixed ranking (whatever the features), to make the overlap known in advance."""

    def __init__(self, version: str, ranking: list[str]) -> None:
        super().__init__("gbdt", version)
        self.ranking = ranking

    def predict(self, features: dict, *, now: float, top: int) -> list[tuple[str, float]]:
        broken = super().predict(features, now=now, top=top)  # counts the call, applies delay / failure
        if self.nan or self.out_of_range:
            return broken
        n = len(self.ranking)
        return [(c, (n - i) / n) for i, c in enumerate(self.ranking)][:top]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def shadow_config() -> ShadowConfigDouble:
    return ShadowConfigDouble()


@pytest.fixture
def build(registry, features, shadow_config, clock):
    made: list[Predictor] = []

    def make(*, draws: list[float] | None = None) -> Predictor:
        values = iter(draws) if draws is not None else None
        predictor = Predictor(
            features=features,
            prior=FakePrior(),
            loader=registry.load,
            registry_reader=registry.read,
            config=PredictorConfig(poll_seconds=0),
            shadow_reader=shadow_config.read,
            sampler=(lambda: next(values)) if values is not None else (lambda: 0.0),
            timer=clock,
        )
        made.append(predictor.start(background=False))
        return predictor

    yield make
    for predictor in made:
        predictor.stop()


def shadowing(
    registry, shadow_config, ranking: list[str], *, rate: float = 1.0, top_k: int = 2
) -> FixedModel:
    """A candidate version 'on disk' with a fixed ranking, configured as the shadow."""
    version = f"gbdt-shadow-{uuid.uuid4().hex[:8]}"
    model = FixedModel(version, ranking)
    registry.models[version] = model
    shadow_config.current = Shadow("gbdt", version, Path("/nonexistent") / version, rate, top_k)
    return model


def test_topk_overlap_is_the_share_of_the_served_top_k_the_shadow_also_has():
    served = [("sports", 0.9), ("travel", 0.5), ("news", 0.1)]
    assert topk_overlap(served, [("travel", 0.8), ("sports", 0.7)], 2) == 1.0  # order does not matter
    assert topk_overlap(served, [("sports", 0.8), ("news", 0.7)], 2) == 0.5
    assert topk_overlap(served, [("food", 0.8), ("news", 0.7)], 2) == 0.0
    assert topk_overlap(served, [("news", 0.8), ("travel", 0.7), ("sports", 0.1)], 3) == 1.0
    assert topk_overlap(served[:1], [("sports", 0.8), ("news", 0.7)], 5) == 1.0  # k capped by the answer
    assert topk_overlap([], [("sports", 0.8)], 3) == 1.0


def test_a_sampled_request_is_scored_by_the_shadow_and_the_served_answer_is_unchanged(
    registry, shadow_config, build
, clock):
    registry.publish("neural", "neural-1")
    baseline = build().predict("alice", deadline=Deadline(1000, clock=clock), top=2)

    shadow = shadowing(registry, shadow_config, ["sports", "news"])  # top-2 overlap with the served: 1/2
    predictor = build()
    assert predictor.shadow_status()["version"] == shadow.version
    warm_up_calls = shadow.calls
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock), top=2)

    assert shadow.calls == warm_up_calls + 1
    assert (answer.served_by, answer.model_version, answer.scores) == (
        baseline.served_by,
        baseline.model_version,
        baseline.scores,
    )
    labels = {"version": shadow.version, "compared_with": "neural"}
    assert sample("inference_shadow_agreement_count", **labels) == 1
    assert sample("inference_shadow_agreement_sum", **labels) == pytest.approx(0.5)
    assert sample("inference_shadow_top1_match_total", **labels) == 1  # both rank sports first
    assert sample("inference_shadow_seconds_count", version=shadow.version) == 1


def test_the_shadow_never_serves_even_when_the_chain_falls_through(registry, shadow_config, build, clock):
    neural = registry.publish("neural", "neural-1")
    shadow = shadowing(registry, shadow_config, ["sports", "travel"])
    predictor = build()
    neural.fail = True
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock), top=2)
    assert (answer.served_by, answer.fallback_reason) == ("prior", "error")
    assert answer.model_version != shadow.version
    assert predictor.loaded() == {"neural": "neural-1"}


def test_a_failing_shadow_is_counted_and_never_reaches_the_answer(registry, shadow_config, build, clock):
    registry.publish("neural", "neural-1")
    shadow = shadowing(registry, shadow_config, ["sports", "travel"])
    predictor = build()
    shadow.fail = True
    answers = [predictor.predict("alice", deadline=Deadline(1000, clock=clock), top=2) for _ in range(8)]
    assert {(a.served_by, a.model_version, a.fallback_reason) for a in answers} == {
        ("neural", "neural-1", None)
    }
    assert all(a.scores == answers[0].scores for a in answers)
    # five failures open the shadow's breaker: the last three requests did not call it at all
    assert sample("inference_shadow_errors_total", version=shadow.version, kind="exception") == 5
    assert sample("inference_shadow_skipped_total", version=shadow.version, reason="circuit_open") == 3
    assert predictor.shadow_status()["breaker"] == "open"
    assert sample("inference_shadow_agreement_count", version=shadow.version, compared_with="neural") == 0


def test_invalid_shadow_output_is_counted_not_raised(registry, shadow_config, build, clock):
    registry.publish("neural", "neural-1")
    shadow = shadowing(registry, shadow_config, ["sports", "travel"])
    predictor = build()
    shadow.nan = True
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock), top=2)
    assert (answer.served_by, answer.fallback_reason) == ("neural", None)
    assert sample("inference_shadow_errors_total", version=shadow.version, kind="invalid_output") == 1


def test_the_shadow_is_skipped_when_the_deadline_has_no_time_left_for_it(registry, shadow_config, build, clock):
    registry.publish("neural", "neural-1")
    shadow = shadowing(registry, shadow_config, ["sports", "travel"])
    shadow.delay_s = 0.03  # 30 ms: the warm-up measures it
    predictor = build()
    calls = shadow.calls
    answer = predictor.predict("alice", deadline=Deadline(20, clock=clock), top=2)
    assert answer.served_by == "neural"
    assert shadow.calls == calls
    assert sample("inference_shadow_skipped_total", version=shadow.version, reason="no_time") == 1


def test_only_the_sampled_share_of_requests_is_scored(registry, shadow_config, build, clock):
    registry.publish("neural", "neural-1")
    shadow = shadowing(registry, shadow_config, ["sports", "travel"], rate=0.25)
    predictor = build(draws=[0.1, 0.3, 0.9, 0.24, 0.25])
    calls = shadow.calls
    for _ in range(5):
        predictor.predict("alice", deadline=Deadline(1000, clock=clock), top=2)
    assert shadow.calls == calls + 2  # the draws under 0.25


def test_cold_start_and_prior_answers_are_not_shadowed(registry, shadow_config, build, clock):
    registry.publish("neural", "neural-1")
    shadow = shadowing(registry, shadow_config, ["sports", "travel"])
    predictor = build()
    calls = shadow.calls
    assert predictor.predict("nobody", deadline=Deadline(1000, clock=clock)).fallback_reason == "cold_start"
    assert shadow.calls == calls


def test_the_shadow_config_is_picked_up_changed_and_dropped_on_the_poll(registry, shadow_config, build):
    registry.publish("neural", "neural-1")
    predictor = build()
    assert predictor.shadow_status() == {}
    shadow = shadowing(registry, shadow_config, ["sports", "travel"], rate=0.5)
    assert predictor.refresh() is True
    assert predictor.shadow_status()["sample_rate"] == "0.5"
    loads = registry.loads
    shadow_config.current = Shadow("gbdt", shadow.version, Path("/nonexistent") / shadow.version, 1.0, 3)
    assert predictor.refresh() is True
    assert predictor.shadow_status()["top_k"] == "3"
    assert registry.loads == loads  # a new rate or k does not reload the model
    shadow_config.fail = True
    assert predictor.refresh() is False  # an unreadable config keeps the shadow
    assert predictor.shadow_status()["version"] == shadow.version
    shadow_config.fail = False
    shadow_config.current = None
    assert predictor.refresh() is True
    assert "version" not in predictor.shadow_status()


def test_a_shadow_that_becomes_active_stops_shadowing(registry, shadow_config, build):
    registry.publish("neural", "neural-1")
    shadow = shadowing(registry, shadow_config, ["sports", "travel"])
    predictor = build()
    registry.active["gbdt"] = registry.active["neural"].__class__(shadow.version, Path("/x") / shadow.version)
    predictor.refresh()
    assert predictor.loaded()["gbdt"] == shadow.version
    assert "version" not in predictor.shadow_status()


def test_a_shadow_that_fails_to_load_leaves_serving_alone(registry, shadow_config, build, clock):
    registry.publish("neural", "neural-1")
    shadow = shadowing(registry, shadow_config, ["sports", "travel"])
    registry.corrupt.add(shadow.version)
    predictor = build()
    status = predictor.shadow_status()
    assert "version" not in status and "corrupt artifact" in status["error"]
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock), top=2)
    assert (answer.served_by, answer.fallback_reason) == ("neural", None)


def test_a_shadow_skipped_for_one_slow_call_is_probed_back_between_requests(registry, shadow_config, build, clock):
    registry.publish("neural", "neural-1")
    shadow = shadowing(registry, shadow_config, ["sports", "travel"])
    shadow.delay_s = 0.03  # one slow spell: its p99 no longer fits a 20 ms deadline
    predictor = build()
    predictor.predict("alice", deadline=Deadline(20, clock=clock), top=2)
    assert sample("inference_shadow_skipped_total", version=shadow.version, reason="no_time") == 1
    shadow.delay_s = 0.0
    probed: list[str] = []
    for _ in range(300):  # fill the window with fast probe timings (the poll thread's job)
        probed = predictor.probe_idle()
    assert f"shadow:{shadow.version}" in probed
    calls = shadow.calls
    predictor.predict("alice", deadline=Deadline(20, clock=clock), top=2)
    assert shadow.calls == calls + 1
