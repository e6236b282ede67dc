"""Training data for the learned models, carved from the training side only.

``training_samples`` splits the events it is given into a fit part and a *later* validation part
for early stopping and model choice (never the test users of an evaluation):

- ``time``: the validation slice starts at the ``validation_quantile`` of the training timestamps;
  fit samples come only from events before it (their labels too), validation samples are prediction
  points after it, with features from everything before them.
- ``user``: like the evaluation's user split, every user with at least 30 training events is cut
  after 80% of their own events: validation points lie after the cut (about every ``every`` events),
  fit samples and their labels use only events before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.events import EventRecord
from inference.features import INTEREST_TYPES
from inference.models.inputs import Sample, samples_build

__all__ = ["TrainingData", "training_samples", "ndcg_of_samples"]


@dataclass(frozen=True)
class TrainingData:
    fit: list[Sample]
    validation: list[Sample]
    popularity: dict[str, float]
    # how the samples were built: a model trained on them must build its serving inputs the same way
    popular_k: int = 20
    item_buckets: int = 8192


def _popularity(events: Sequence[EventRecord], categories: Sequence[str]) -> dict[str, float]:
    counts = dict.fromkeys(categories, 0.0)
    for event in events:
        for category in event.categories:
            if category in counts:
                counts[category] += 1.0
    return counts


def training_samples(
    events: Sequence[EventRecord],
    *,
    categories: Sequence[str],
    horizon: int,
    validation: str = "time",
    validation_quantile: float = 0.85,
    every: int = 5,
    popular_k: int = 20,
    item_buckets: int = 8192,
    seed: int = 0,
    returns: bool = True,
) -> TrainingData:
    index = {c: i for i, c in enumerate(categories)}
    ordered = sorted(events, key=lambda e: e.ts)
    common: dict[str, Any] = {
        "horizon": horizon,
        "category_index": index,
        "popular_k": popular_k,
        "item_buckets": item_buckets,
        # points at every return after a break as well: served answers are asked for at such gaps
        "returns": returns,
    }
    if validation == "user":
        # positions count interest events, as the builder's do
        by_user: dict[str, int] = {}
        for event in ordered:
            if event.type in INTEREST_TYPES:
                by_user[event.user_id] = by_user.get(event.user_id, 0) + 1
        cuts = {u: int(0.8 * n) for u, n in by_user.items() if n >= 30}
        seen: dict[str, int] = {}
        fit_events = []
        for event in ordered:
            position = seen.get(event.user_id, 0)
            if event.type in INTEREST_TYPES:
                seen[event.user_id] = position + 1
            if position < cuts.get(event.user_id, 1 << 62):
                fit_events.append(event)
        fit = list(samples_build(fit_events, every=every, seed=seed, **common))
        val = list(samples_build(ordered, every=every, seed=seed + 1, start_index=cuts, **common))
        val = [s for s in val if s.user_id in cuts]
    elif validation == "time":
        if not ordered:
            return TrainingData([], [], _popularity(ordered, categories), popular_k, item_buckets)
        cutoff = float(np.quantile([e.ts for e in ordered], validation_quantile))
        fit_events = [e for e in ordered if e.ts < cutoff]
        seen_before: dict[str, int] = {}
        for event in fit_events:
            if event.type in INTEREST_TYPES:
                seen_before[event.user_id] = seen_before.get(event.user_id, 0) + 1
        fit = list(samples_build(fit_events, every=every, seed=seed, **common))
        val = list(samples_build(ordered, every=every, seed=seed + 1, start_index=seen_before, **common))
        val = [s for s in val if s.ts >= cutoff]
    else:
        raise ValueError(f"unknown validation split {validation!r}")
    return TrainingData(fit, val, _popularity(ordered, categories), popular_k, item_buckets)


def ndcg_of_samples(samples: Sequence[Sample], scores: Sequence[np.ndarray], k: int = 5) -> float:
    """Mean NDCG@k of candidate scores against the candidates' labels (for early stopping)."""
    values = []
    for sample, score in zip(samples, scores, strict=True):
        labels = sample.labels
        if labels.sum() <= 0:
            continue
        top = np.argsort(-score, kind="stable")[:k]
        discounts = 1.0 / np.log2(np.arange(2, min(k, labels.size) + 2))
        dcg = float(labels[top] @ discounts[: top.size])
        ideal = float(np.sort(labels)[::-1][:k] @ discounts[: min(k, labels.size)])
        values.append(dcg / ideal)
    return float(np.mean(values)) if values else 0.0
