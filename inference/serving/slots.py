"""What serving holds and how it checks an answer: the interfaces of its parts (models, feature store,
prior, registry), one loaded model version (``LoadedModel``: model, breaker, latency window), the shadow
slot, the predictor's configuration and the output check every model answer passes.

Every other serving module (loading, polling, probes, shadow, the fallback chain in ``predictor``)
works on these types; none of them holds a reference another one replaces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from inference.serving.breaker import CircuitBreaker
from inference.serving.latency import LatencyWindow

__all__ = [
    "BASELINE_RANKERS",
    "BLEND",
    "CHAIN",
    "LEARNED",
    "ActiveVersionLike",
    "FeatureAccess",
    "InvalidOutput",
    "LoadedModel",
    "ModelLoader",
    "PredictorConfig",
    "PriorScorer",
    "RegistryReader",
    "ServingModel",
    "ShadowReader",
    "ShadowSlot",
    "ShadowVersionLike",
    "serving_order",
    "validated_scores",
]

# the learned models; a missing one is a fallback (``no_model``) for an answer from a ranker after it here
LEARNED = ("neural", "gbdt")
# the evaluation's baselines as servable rankers (``inference.models.baselines``): the registry keeps at
# most the best one active; without an active version they are no step
BASELINE_RANKERS = ("decayed", "frequency", "recent", "popularity")
# the learned models' blend (``inference.models.blend``): the registry builds it from the active neural and
# gbdt versions; it is no ``LEARNED`` step of its own (without it, the network answering is no fallback)
BLEND = "blend"
# the rankers serving may hold; ties in ``serving_order`` go to the one named first here
CHAIN = (BLEND, *LEARNED, *BASELINE_RANKERS)


def serving_order(scores: Mapping[str, float | None], chain: Sequence[str] = CHAIN) -> list[str]:
    """The order the chain tries its active rankers: best validation score (NDCG@5 on the training
    run's slice) first, whatever the algorithm; equal scores in ``chain`` order; unscored ones last.
    Names outside ``chain`` are left out."""
    position = {name: index for index, name in enumerate(chain)}

    def key(name: str) -> tuple[bool, float, int]:
        score = scores[name]
        known = score is not None and math.isfinite(score)
        return (not known, -float(score) if known else 0.0, position[name])  # type: ignore[arg-type]

    return sorted((name for name in scores if name in position), key=key)


class ServingModel(Protocol):
    def predict(self, features: Any, *, now: float, top: int) -> Sequence[tuple[str, float]]: ...


class FeatureAccess(Protocol):
    """The online feature store as serving sees it (one round trip per user)."""

    def read(self, user_id: str, *, now: float) -> Any:
        """The user's features; raises when the store is unavailable."""
        ...

    def is_cold(self, features: Any) -> bool: ...

    def empty(self) -> Any:
        """Features of a user with no history (used for the warm-up)."""
        ...


class PriorScorer(Protocol):
    version: str

    def predict(self, features: Any | None, *, now: float, top: int) -> Sequence[tuple[str, float]]:
        """Population popularity blended with the user's decayed counts; population only for None."""
        ...


class ActiveVersionLike(Protocol):
    @property
    def version(self) -> str: ...
    @property
    def artifact_dir(self) -> Path: ...
    @property
    def validation_score(self) -> float | None:
        """NDCG@5 on the validation slice (``serving_order``); None when never scored."""
        ...


class ShadowVersionLike(Protocol):
    @property
    def algorithm(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def artifact_dir(self) -> Path: ...
    @property
    def sample_rate(self) -> float: ...
    @property
    def top_k(self) -> int: ...


ModelLoader = Callable[[str, Path], ServingModel]
RegistryReader = Callable[[], Mapping[str, ActiveVersionLike]]
ShadowReader = Callable[[], ShadowVersionLike | None]


@dataclass(eq=False)
class LoadedModel:
    """One version of one algorithm as this process holds it (model None: it failed to load)."""

    name: str
    version: str
    model: ServingModel | None
    breaker: CircuitBreaker
    latency: LatencyWindow
    error: str = ""
    last_call: float = 0.0  # the predictor's monotonic clock at the last request that called it
    score_range: tuple[float, float] = (0.0, 1.0)
    validation_score: float | None = None  # the registry's, as of the last poll (``serving_order``)


@dataclass(frozen=True, eq=False)
class ShadowSlot:
    """The shadow as this process holds it: a loaded, warmed-up model and how much traffic it sees."""

    slot: LoadedModel
    sample_rate: float
    top_k: int


@dataclass(frozen=True)
class PredictorConfig:
    failure_threshold: int = 5
    cooldown_s: float = 5.0
    latency_window: int = 256
    latency_max_age_s: float = 1.0
    poll_seconds: float = 2.0
    # how often the poll thread times the models no request called meanwhile (capped by poll_seconds)
    probe_seconds: float = 0.5
    chain: tuple[str, ...] = CHAIN
    warm_up_calls: int = 2

    def probe_period(self) -> float:
        """Seconds between the poll thread's probes: ``probe_seconds``, at most ``poll_seconds``."""
        probe, poll = self.probe_seconds, self.poll_seconds
        return min(probe, poll) if probe > 0 else poll


class InvalidOutput(ValueError):
    """A model answered with NaN, infinity, an out-of-range score or a malformed pair."""


def validated_scores(
    raw: Sequence[tuple[str, float]], top: int, score_range: tuple[float, float]
) -> tuple[tuple[str, float], ...]:
    """The first ``top`` pairs as ``(str, float)``; raises ``InvalidOutput`` on a score that is not
    finite or lies outside ``score_range``."""
    low, high = score_range
    out: list[tuple[str, float]] = []
    for category, score in raw[:top]:
        value = float(score)
        if not math.isfinite(value) or value < low or value > high:
            raise InvalidOutput(f"score {value!r} for {category!r} outside [{low}, {high}]")
        out.append((str(category), value))
    return tuple(out)
