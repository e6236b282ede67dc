"""The four baselines of EVALUATION.md, as score matrices over (test case, category).

- ``popularity``: category frequency on the training side (the same ranking for everyone);
- ``frequency``: the user's own category counts before the cut-off;
- ``recent``: the counts in the user's last 20 events;
- ``decayed``: the counts with exponential decay (half-life 1 day) measured from the user's last event.

A multi-category event counts once for each of its categories, everywhere. Ties (for example the
categories a user never saw) are broken by popularity through the ranking's tiebreak order, which is
what "ties by popularity" means for the frequency baseline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from inference.evaluation.protocol import EvaluationCase
from inference.events import EventRecord

__all__ = ["BASELINES", "category_popularity", "baseline_scores"]

BASELINES = ("popularity", "frequency", "recent", "decayed")
RECENT_EVENTS = 20
HALF_LIFE_S = 86_400.0


def category_popularity(events: Iterable[EventRecord]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for event in events:
        counts.update(event.categories)
    return counts


def _counts(events: Sequence[EventRecord], index: dict[str, int], size: int) -> np.ndarray:
    row = np.zeros(size)
    for event in events:
        for category in event.categories:
            if category in index:
                row[index[category]] += 1.0
    return row


def _decayed(events: Sequence[EventRecord], index: dict[str, int], size: int) -> np.ndarray:
    row = np.zeros(size)
    if not events:
        return row
    last = events[-1].ts
    for event in events:
        weight = 0.5 ** ((last - event.ts) / HALF_LIFE_S)
        for category in event.categories:
            if category in index:
                row[index[category]] += weight
    return row


def baseline_scores(
    name: str, cases: Sequence[EvaluationCase], categories: Sequence[str], popularity: Counter[str]
) -> np.ndarray:
    """Scores[case, category] of baseline ``name`` (higher ranks first)."""
    index = {c: i for i, c in enumerate(categories)}
    size = len(categories)
    if name == "popularity":
        row = np.array([float(popularity.get(c, 0)) for c in categories])
        return np.tile(row, (len(cases), 1))
    rows = []
    for case in cases:
        if name == "frequency":
            rows.append(_counts(case.history, index, size))
        elif name == "recent":
            rows.append(_counts(case.history[-RECENT_EVENTS:], index, size))
        elif name == "decayed":
            rows.append(_decayed(case.history, index, size))
        else:
            raise ValueError(f"unknown baseline {name!r}")
    return np.array(rows).reshape(len(cases), size)
