"""Test doubles for the serving tests: models, a feature store and a prior with the serving interfaces."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inference.serving.predictor import Predictor, PredictorConfig


class TestClock:
    """The serving tests' monotonic clock: real time plus what the test skipped ahead (``advance``). A
    model's delay advances it instead of sleeping, so a test about a deadline never races the host."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.perf_counter() + self.skipped

    def advance(self, seconds: float) -> None:
        self.skipped += seconds


class FakeModel:
    """A model double: fixed scores, optional delay (on the test clock), exception or NaN, switchable
    after loading."""

    def __init__(self, name: str, version: str, clock: TestClock | None = None) -> None:
        self.name = name
        self.version = version
        self.clock = clock
        self.delay_s = 0.0
        self.fail = False
        self.nan = False
        self.out_of_range = False
        self.calls = 0

    def predict(self, features: dict, *, now: float, top: int) -> list[tuple[str, float]]:
        self.calls += 1
        if self.delay_s:
            if self.clock is not None:
                self.clock.advance(self.delay_s)
            else:
                time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("model exploded")
        if self.nan:
            return [("sports", float("nan"))]
        if self.out_of_range:
            return [("sports", 7.5)]
        ranked = sorted(features.items(), key=lambda kv: -kv[1]) if features else [("news", 1.0)]
        total = sum(v for _, v in ranked) or 1.0
        return [(c, v / total) for c, v in ranked][:top]


@dataclass
class FakeFeatures:
    users: dict[str, dict[str, float]] = field(default_factory=dict)
    down: bool = False

    def read(self, user_id: str, now: float | None = None) -> dict[str, float]:
        if self.down:
            raise ConnectionError("feature store unreachable")
        return dict(self.users.get(user_id, {}))

    def is_cold(self, features: dict[str, float]) -> bool:
        return not features

    def empty(self) -> dict[str, float]:
        return {}


class FakePrior:
    version = "prior"
    population = {"news": 0.5, "sports": 0.3, "travel": 0.2}

    def predict(self, features: dict | None, *, now: float, top: int) -> list[tuple[str, float]]:
        blended = dict(self.population)
        for category, count in (features or {}).items():
            blended[category] = blended.get(category, 0.0) + count
        return sorted(blended.items(), key=lambda kv: -kv[1])[:top]


@dataclass(frozen=True)
class Active:
    version: str
    artifact_dir: Path
    validation_score: float | None = None


class FakeRegistry:
    """The registry as serving polls it, plus the models 'on disk' that the loader reads."""

    def __init__(self, clock: TestClock | None = None) -> None:
        self.clock = clock
        self.active: dict[str, Active] = {}
        self.models: dict[str, FakeModel] = {}
        self.corrupt: set[str] = set()
        self.loads = 0

    def publish(self, name: str, version: str, *, validation_score: float | None = None) -> FakeModel:
        model = FakeModel(name, version, self.clock)
        self.models[version] = model
        self.active[name] = Active(version, Path("/nonexistent") / version, validation_score)
        return model

    def read(self) -> dict[str, Active]:
        return dict(self.active)

    def load(self, name: str, artifact_dir: Path) -> FakeModel:
        self.loads += 1
        version = artifact_dir.name
        if version in self.corrupt:
            raise OSError(f"corrupt artifact in {artifact_dir}")
        return self.models[version]


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def registry(clock: TestClock) -> FakeRegistry:
    return FakeRegistry(clock)


@pytest.fixture
def features() -> FakeFeatures:
    return FakeFeatures(users={"alice": {"sports": 3.0, "travel": 1.0}})


@pytest.fixture
def make_predictor(registry: FakeRegistry, features: FakeFeatures, clock: TestClock):
    made: list[Predictor] = []

    def make(**config: object) -> Predictor:
        predictor = Predictor(
            features=features,
            prior=FakePrior(),
            loader=registry.load,
            registry_reader=registry.read,
            config=PredictorConfig(**config),
            timer=clock,
        )
        made.append(predictor.start(background=bool(config.get("poll_seconds"))))
        return predictor

    yield make
    for predictor in made:
        predictor.stop()
