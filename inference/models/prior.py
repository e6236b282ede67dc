"""The prior: population popularity blended with the user's own decayed interest.

No learning: score = (1 - w) * population share + w * the user's 1-day-decayed share (from the user's
last event), ``w`` growing with the user's history (``events / (events + shrinkage)``). It needs no
artifact beyond its manifest, so serving can always fall back to it, also built straight from a
popularity table (``PriorModel.from_population``) when no trained version exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from inference.events import EventRecord
from inference.models.base import PairModel, manifest_read
from inference.models.calibration import Calibration, history_calibration_fit
from inference.models.inputs import PAIR_FEATURE_NAMES, Sample

__all__ = ["PriorModel", "prior_train"]

_SHARE = PAIR_FEATURE_NAMES.index("population_share")
_USER_SHARE = PAIR_FEATURE_NAMES.index("last_event_decayed_share")
_EVENTS = PAIR_FEATURE_NAMES.index("log_user_events")


class PriorModel(PairModel):
    algorithm = "prior"
    uses_sequence = False  # scores the pair rows only

    def __init__(self, **kwargs: Any) -> None:
        # the blended share read as a per-event chance over the horizon (``calibration``): nothing to fit
        if kwargs.get("calibration") is None:
            kwargs["calibration"] = Calibration("horizon_share", horizon=10)
        super().__init__(**kwargs)

    @classmethod
    def from_population(
        cls,
        popularity: Mapping[str, float],
        *,
        categories: Sequence[str] | None = None,
        shrinkage: float = 5.0,
        per_event: float = 1.0,
        calibration: Calibration | None = None,
    ) -> Self:
        """``per_event``: the categories of an average event (the calibration reads a share times it as
        the category's chance per event); ``calibration``: one fitted with a trained version
        (``calibrate``), which then replaces that reading."""
        reading = Calibration("horizon_share", horizon=10, per_event=max(1.0, float(per_event)))
        return cls(
            calibration=calibration or reading,
            categories=list(categories)
            if categories is not None
            else sorted(popularity, key=lambda c: -popularity[c]),
            popularity=popularity,
            hyperparameters={"shrinkage": shrinkage, "popular_k": 50},
        )

    def calibrate(self, validation: Sequence[Sample]) -> Self:
        """Fit the history-length calibration (``history_logistic``) over the horizon-share reading on
        a validation slice; its facts go to ``training["calibration"]``."""
        reading = self.calibration if self.calibration is not None and self.calibration.method == "horizon_share" \
            else Calibration("horizon_share", horizon=10)
        self.calibration, facts = history_calibration_fit(
            reading,
            self.score_many(validation),
            [float(np.expm1(s.rows[0, _EVENTS])) if len(s.rows) else 0.0 for s in validation],
            [s.labels for s in validation],
        )
        self.training["calibration"] = facts
        return self

    def sample_probabilities(self, sample: Sample, scores: np.ndarray) -> np.ndarray:
        assert self.calibration is not None
        return self.calibration.probabilities(scores, events=np.expm1(sample.rows[:, _EVENTS]))

    def score(self, sample: Sample) -> np.ndarray:
        shrinkage = float(self.hyperparameters.get("shrinkage", 5.0))
        rows = sample.rows
        events = np.expm1(rows[:, _EVENTS])
        weight = events / (events + shrinkage)
        return (1.0 - weight) * rows[:, _SHARE] + weight * rows[:, _USER_SHARE]

    def save(self, directory: Path) -> None:
        self._write_manifest(directory)

    @classmethod
    def load(cls, directory: Path) -> Self:
        return cls(**cls._kwargs_from_manifest(manifest_read(directory)))


def prior_train(
    *, events: Iterable[EventRecord], categories: Sequence[str], shrinkage: float = 5.0
) -> PriorModel:
    """The prior from the population counts of ``events`` (each category of an event counts once)."""
    counts: dict[str, float] = dict.fromkeys(categories, 0.0)
    with_categories = 0
    for event in events:
        found = False
        for category in event.categories:
            if category in counts:
                counts[category] += 1.0
                found = True
        with_categories += found
    per_event = sum(counts.values()) / with_categories if with_categories else 1.0
    return PriorModel.from_population(counts, categories=categories, shrinkage=shrinkage, per_event=per_event)
