"""The evaluation's baselines as servable rankers: ``popularity``, ``frequency``, ``recent``, ``decayed``.

Each ranks a user's candidates from one pair feature, exactly as the baseline of the same name in
``inference.evaluation.baselines`` ranks every category (ties, and the categories a user never saw,
by population popularity), so a registered baseline serves what the evaluation measured:

- ``popularity``: the population's share of the category;
- ``frequency``: the user's own count share;
- ``recent``: the count in the user's last 20 interest events;
- ``decayed``: the 1-day-half-life decayed share measured from the user's last event, which does not
  fade while the user is away (a visitor back after a month is ranked as they left).

No learning and no artifact beyond the manifest: the registry holds them as versions like the
models, so the activation rule can serve one when no learned model beats it on the validation slice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from inference.events import EventRecord
from inference.models.base import PairModel, manifest_read
from inference.models.inputs import PAIR_FEATURE_NAMES, Sample

__all__ = ["BASELINE_RANKERS", "BaselineRanker", "baseline_ranker_train"]

# the population share breaks ties: far below any difference of the user's own values
_TIEBREAK = 1e-9
_POPULATION = PAIR_FEATURE_NAMES.index("population_share")


class BaselineRanker(PairModel):
    """Scores each candidate by one pair feature (``feature``), ties by popularity."""

    algorithm: ClassVar[str] = "baseline"
    feature: ClassVar[str] = ""
    uses_sequence = False  # scores the pair rows only

    def score(self, sample: Sample) -> np.ndarray:
        rows = sample.rows
        own = rows[:, PAIR_FEATURE_NAMES.index(self.feature)].astype(np.float64)
        population = rows[:, _POPULATION].astype(np.float64)
        if self.feature == "population_share":
            return population
        return own + _TIEBREAK * population

    def save(self, directory: Path) -> None:
        self._write_manifest(directory)

    @classmethod
    def load(cls, directory: Path) -> Self:
        return cls(**cls._kwargs_from_manifest(manifest_read(directory)))


class PopularityRanker(BaselineRanker):
    algorithm = "popularity"
    feature = "population_share"


class FrequencyRanker(BaselineRanker):
    algorithm = "frequency"
    feature = "count_share"


class RecentRanker(BaselineRanker):
    algorithm = "recent"
    feature = "recent20_count"


class DecayedRanker(BaselineRanker):
    algorithm = "decayed"
    feature = "last_event_decayed_share"


BASELINE_RANKERS: dict[str, type[BaselineRanker]] = {
    cls.algorithm: cls for cls in (PopularityRanker, FrequencyRanker, RecentRanker, DecayedRanker)
}


def baseline_ranker_train(
    *, algorithm: str, events: Iterable[EventRecord], categories: Sequence[str]
) -> BaselineRanker:
    """The ranker ``algorithm`` with the population counts of ``events`` (its cold-start popularity)."""
    counts: dict[str, float] = dict.fromkeys(categories, 0.0)
    for event in events:
        for category in event.categories:
            if category in counts:
                counts[category] += 1.0
    # candidates: the user's own categories (up to 80) plus the 20 most popular, as the learned models'
    return BASELINE_RANKERS[algorithm](
        categories=categories, popularity=counts, hyperparameters={"popular_k": 20}
    )
