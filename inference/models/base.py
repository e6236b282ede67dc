"""The common interface of the interest models, and what they share.

Every model scores (user, candidate category) pairs: the candidates are the user's own categories
plus the ``popular_k`` most popular ones (``inputs.candidate_categories``), so size and latency do not
grow with one output per category. A model lives in a directory: ``manifest.json`` (algorithm,
hyperparameters, category vocabulary, feature schema version, training facts) plus its own artifact
files. ``model_load(directory)`` (in ``inference.models``) reads any of them back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from inference.features import FEATURE_SCHEMA_VERSION, PopulationFeatures, UserFeatures
from inference.models.calibration import Calibration, calibration_fit
from inference.models.inputs import (
    INPUTS_VERSION,
    PAIR_FEATURE_NAMES,
    Sample,
    population_from_counts,
    sample_inputs,
)

__all__ = [
    "FEATURE_SCHEMA_VERSION",
    "MANIFEST",
    "Progress",
    "InterestModel",
    "PairModel",
    "Ranking",
    "manifest_read",
]

MANIFEST = "manifest.json"
# scores for categories that are not among a user's candidates (rank last, below any real score)
NOT_A_CANDIDATE = -1e9

Progress = Callable[[float, str], None]


@runtime_checkable
class InterestModel(Protocol):
    algorithm: ClassVar[str]
    hyperparameters: dict[str, Any]
    categories: tuple[str, ...]

    def score(self, sample: Sample) -> np.ndarray: ...

    def predict(
        self, user: UserFeatures | None, population: PopulationFeatures | None, *, now: float, top: int = 5
    ) -> list[tuple[str, float]]: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Self: ...


def manifest_read(directory: Path) -> dict[str, Any]:
    manifest = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    found = (manifest.get("feature_schema_version"), manifest.get("inputs_version"))
    if found != (FEATURE_SCHEMA_VERSION, INPUTS_VERSION):
        raise ValueError(
            f"{directory}: feature schema / inputs version {found} "
            f"is not the current {(FEATURE_SCHEMA_VERSION, INPUTS_VERSION)}"
        )
    return manifest


class Ranking(list[tuple[str, float]]):
    """``predict``'s answer: (category, score) pairs best first, and their calibrated probabilities
    (one per pair; empty for a model without a calibration)."""

    probabilities: tuple[float, ...] = ()


class PairModel:
    """Shared behaviour: candidates, pair inputs, ranking, the manifest. Subclasses score samples."""

    algorithm: ClassVar[str] = "pair"
    # whether score() reads the recent sequence (items / cats / ages) or only the pair rows
    uses_sequence: ClassVar[bool] = True

    def __init__(
        self,
        *,
        categories: Sequence[str],
        popularity: Mapping[str, float],
        hyperparameters: Mapping[str, Any],
        training: Mapping[str, Any] | None = None,
        calibration: Calibration | Mapping[str, Any] | None = None,
    ) -> None:
        self.categories = tuple(categories)
        # raw score -> P(category among the next H interest events); None: saved before calibration
        self.calibration = (
            calibration if isinstance(calibration, Calibration) or calibration is None
            else Calibration.from_dict(calibration)
        )
        self.category_index = {c: i for i, c in enumerate(self.categories)}
        self.popularity = {c: float(popularity.get(c, 0.0)) for c in self.categories}
        self.hyperparameters = dict(hyperparameters)
        self.training = dict(training or {})
        self._fallback_population = population_from_counts(self.popularity)

    # -- what subclasses provide -------------------------------------------------------------
    def score(self, sample: Sample) -> np.ndarray:
        """One score per candidate of ``sample`` (higher ranks first)."""
        raise NotImplementedError

    def score_many(self, samples: Sequence[Sample]) -> list[np.ndarray]:
        return [self.score(s) for s in samples]

    def save(self, directory: Path) -> None:
        """Write the model's artifact and manifest to ``directory`` (``load`` reads them back)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    @property
    def popular_k(self) -> int:
        return int(self.hyperparameters.get("popular_k", 20))

    @property
    def item_buckets(self) -> int:
        return int(self.hyperparameters.get("item_buckets", 8192))

    def popular(self, population: PopulationFeatures | None) -> list[str]:
        if population is None or not population.counts:
            population = self._fallback_population
        return population.popular(self.popular_k)

    def inputs(
        self, user_id: str, user: UserFeatures | None, population: PopulationFeatures | None, now: float
    ) -> Sample:
        """Model inputs from the features read-out (``None`` user = cold; ``None`` or empty population =
        the popularity saved with the model)."""
        if population is None or not population.counts:
            population = self._fallback_population
        return sample_inputs(
            user_id,
            user if user is not None else UserFeatures.empty(now),
            population,
            category_index=self.category_index,
            popular=self.popular(population),
            item_buckets=self.item_buckets,
            sequence=self.uses_sequence,
        )

    def predict(
        self, user: UserFeatures | None, population: PopulationFeatures | None, *, now: float, top: int = 5
    ) -> list[tuple[str, float]]:
        """The ``top`` categories for one user, best first, with scores in (0, 1) (a logistic of the
        model's score; comparable within one answer). The list is a ``Ranking``: its ``probabilities``
        are the calibrated P(category among the next H interest events), empty without a calibration.

        ``user`` and ``population`` are the online store's read-out (``serving_state_reader``): the
        features are taken at ``user.now``; ``now`` dates a cold (``None``) user."""
        sample = self.inputs("", user, population, now)
        if sample.candidates.size == 0:
            return []
        scores = self.score(sample)
        # equal scores (a small tree ensemble gives many) go to the more popular category, then by name:
        # the protocol's tie-break, so the served ranking is the one the evaluation measured
        if population is None or not population.counts:
            population = self._fallback_population
        names = [self.categories[int(c)] for c in sample.candidates]
        counts = population.counts
        order = np.asarray(
            sorted(range(len(names)), key=lambda i: (-float(scores[i]), -counts.get(names[i], 0.0), names[i]))[:top],
            dtype=np.int64,
        )
        squashed = 1.0 / (1.0 + np.exp(-np.clip(scores[order].astype(np.float64), -30, 30)))
        ranking = Ranking(
            (self.categories[int(sample.candidates[i])], float(p)) for i, p in zip(order, squashed, strict=True)
        )
        if self.has_probabilities:  # over every candidate (a log-softmax input needs them all)
            ranking.probabilities = tuple(float(p) for p in self.sample_probabilities(sample, scores)[order])
        return ranking

    @property
    def has_probabilities(self) -> bool:
        """Whether ``sample_probabilities`` answers (a calibration was fitted, or the model's scores are
        probabilities of their own)."""
        return self.calibration is not None

    def sample_probabilities(self, sample: Sample, scores: np.ndarray) -> np.ndarray:
        """The calibrated probabilities of one sample's candidate ``scores`` (needs a calibration)."""
        assert self.calibration is not None
        return self.calibration.probabilities(scores)

    def calibrate(self, validation: Sequence[Sample]) -> Self:
        """Fit the Platt calibration on the validation slice (``calibration``) and keep its facts in
        ``training["calibration"]``: the learned models call it once fitted."""
        self.calibration, facts = calibration_fit(
            self.score_many(validation), [s.labels for s in validation], input=self.calibration_input
        )
        self.training["calibration"] = facts
        return self

    @property
    def calibration_input(self) -> str:
        """What the calibration line reads: ``raw`` scores, or their ``log_softmax`` over the user's
        candidates for a model whose loss ignores a shift of one user's scores (see ``calibration``)."""
        return "raw"

    def probabilities_matrix(self, scores: np.ndarray) -> np.ndarray:
        """``scores_matrix`` as calibrated probabilities (NaN for non-candidates and without a calibration)."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.calibration is None:
            return np.full(scores.shape, np.nan)
        return self.calibration.probabilities_rows(scores, scores > NOT_A_CANDIDATE)

    def scores_matrix(self, samples: Sequence[Sample]) -> np.ndarray:
        """Scores[sample, category] with non-candidates at ``NOT_A_CANDIDATE`` (for the evaluation)."""
        matrix = np.full((len(samples), len(self.categories)), NOT_A_CANDIDATE)
        for row, (sample, scores) in enumerate(zip(samples, self.score_many(samples), strict=True)):
            matrix[row, sample.candidates] = scores
        return matrix

    def manifest(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "feature_schema_version": FEATURE_SCHEMA_VERSION,
            "inputs_version": INPUTS_VERSION,
            "pair_features": list(PAIR_FEATURE_NAMES),
            "categories": list(self.categories),
            "popularity": self.popularity,
            "hyperparameters": self.hyperparameters,
            "training": self.training,
            "calibration": self.calibration.as_dict() if self.calibration is not None else None,
        }

    def _write_manifest(self, directory: Path, extra: Mapping[str, Any] | None = None) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {**self.manifest(), **(extra or {})}
        (directory / MANIFEST).write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")

    @classmethod
    def _kwargs_from_manifest(cls, manifest: Mapping[str, Any]) -> dict[str, Any]:
        if manifest.get("algorithm") != cls.algorithm:
            raise ValueError(f"manifest is for {manifest.get('algorithm')!r}, not {cls.algorithm!r}")
        return {
            "categories": manifest["categories"],
            "popularity": manifest["popularity"],
            "hyperparameters": manifest["hyperparameters"],
            "training": manifest.get("training", {}),
            "calibration": manifest.get("calibration"),
        }
