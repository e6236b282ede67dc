"""Training data for the learned models, carved from the training side only.

``training_samples`` splits the events it is given into a fit part and a *later* validation part
for early stopping and model choice (never the test users of an evaluation):

- ``time``: the validation slice starts at the ``validation_quantile`` of the training timestamps;
  fit samples come only from events before it (their labels too), validation samples are prediction
  points after it, with features from everything before them.
- ``user``: like the evaluation's user split, every user with at least 30 training events is cut
  after 80% of their own events: validation points lie after the cut (about every ``every`` events),
  fit samples and their labels use only events before it.

Where the points lie (``points``):

- ``events``: before about every ``every``-th interest event of each user (mid-session, seconds after
  the previous event) and, with ``returns``, at every return after a break: what a request during a
  visit sees, and what the user split tests;
- ``cutoffs``: at a grid of global times every ``cutoff_step_s`` seconds, a point for every user with
  at least 5 interest events before it and one after (labels: the next ``horizon``): what the time
  split tests, a prediction made at a moment unrelated to the user's own clock (often hours into a
  gap between visits). Training only on the mid-visit points teaches "the last thing seen comes
  next", which is wrong after a gap; the grid teaches both, as the test does.
- ``auto``: ``cutoffs`` with the time validation split, ``events`` with the user split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.events import EventRecord
from inference.features import INTEREST_TYPES
from inference.models.inputs import Sample, samples_build

__all__ = ["CUTOFF_STEP_S", "SamplesBuilder", "TrainingData", "samples_list", "training_samples", "ndcg_of_samples"]

# the grid of prediction times of ``points="cutoffs"``: every 3 hours
CUTOFF_STEP_S = 3 * 3600.0
MAX_CUTOFFS = 96


# builds the samples of one event stream: ``samples_build``'s keywords in, the samples out (a list
# here; the distributed builder's ``ShardedSamples`` keeps them in Parquet shards on the cluster)
SamplesBuilder = Callable[..., Sequence[Sample]]


def samples_list(events: Sequence[EventRecord], **options: Any) -> list[Sample]:
    """The single-process builder: ``samples_build`` in this process."""
    return list(samples_build(events, **options))


@dataclass(frozen=True)
class TrainingData:
    fit: Sequence[Sample]
    validation: list[Sample]
    popularity: dict[str, float]
    # how the samples were built: a model trained on them must build its serving inputs the same way
    popular_k: int = 20
    item_buckets: int = 8192
    # how the training set was built: the engine, partitions, rows, seconds (the --json facts)
    facts: dict[str, Any] = field(default_factory=dict)


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
    points: str = "auto",
    cutoff_step_s: float = CUTOFF_STEP_S,
    build: SamplesBuilder = samples_list,
) -> TrainingData:
    """Fit and validation samples of ``events`` (see the module docstring); ``build`` makes the samples
    of each event stream (default: in this process; ``inference.training.distributed`` on Dask)."""
    index = {c: i for i, c in enumerate(categories)}
    if points == "auto":
        points = "cutoffs" if validation == "time" else "events"
    if points not in {"events", "cutoffs"}:
        raise ValueError(f"unknown training points {points!r}: use events, cutoffs or auto")
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
        fit = build(fit_events, every=every, seed=seed, **common)
        val = build(ordered, every=every, seed=seed + 1, start_index=cuts, **common)
        val = [s for s in val if s.user_id in cuts]
    elif validation == "time":
        if not ordered:
            return TrainingData([], [], _popularity(ordered, categories), popular_k, item_buckets)
        cutoff = float(np.quantile([e.ts for e in ordered], validation_quantile))
        fit_events = [e for e in ordered if e.ts < cutoff]
        if points == "cutoffs":
            start = ordered[0].ts + cutoff_step_s
            grid = {k: v for k, v in common.items() if k != "returns"}
            fit = _cutoff_samples(fit_events, np.arange(start, cutoff, cutoff_step_s), build=build, **grid)
            val = list(
                _cutoff_samples(ordered, np.arange(cutoff, ordered[-1].ts, cutoff_step_s), build=build, **grid)
            )
            return TrainingData(fit, val, _popularity(ordered, categories), popular_k, item_buckets)
        seen_before: dict[str, int] = {}
        for event in fit_events:
            if event.type in INTEREST_TYPES:
                seen_before[event.user_id] = seen_before.get(event.user_id, 0) + 1
        fit = build(fit_events, every=every, seed=seed, **common)
        val = build(ordered, every=every, seed=seed + 1, start_index=seen_before, **common)
        val = [s for s in val if s.ts >= cutoff]
    else:
        raise ValueError(f"unknown validation split {validation!r}")
    return TrainingData(fit, val, _popularity(ordered, categories), popular_k, item_buckets)


def _cutoff_samples(
    events: Sequence[EventRecord],
    times: np.ndarray,
    *,
    horizon: int,
    category_index: dict[str, int],
    popular_k: int,
    item_buckets: int,
    min_history: int = 5,
    build: SamplesBuilder = samples_list,
) -> Sequence[Sample]:
    """A sample at each of ``times`` for every user with ``min_history`` interest events before it
    and at least one after it (in ``events``): features before the time, labels from the next
    ``horizon`` interest events among ``events``."""
    if not len(times) or not events:
        return []
    if len(times) > MAX_CUTOFFS:  # a long history (years of MovieLens): an even subset of the grid
        times = times[np.linspace(0, len(times) - 1, MAX_CUTOFFS).round().astype(int)]
    interest_ts: dict[str, list[float]] = {}
    for event in events:
        if event.type in INTEREST_TYPES:
            interest_ts.setdefault(event.user_id, []).append(float(event.ts))
    # only the grid times at which a user qualifies: min_history interest events before, one after
    requests = {}
    for user_id, stamps in interest_ts.items():
        if len(stamps) > min_history:
            first, last = stamps[min_history - 1], stamps[-1]
            chosen = [float(t) for t in times if first < t <= last]
            if chosen:
                requests[user_id] = chosen
    samples = build(
        events,
        horizon=horizon,
        category_index=category_index,
        popular_k=popular_k,
        item_buckets=item_buckets,
        every=None,
        min_history=min_history,
        prediction_times=requests,
    )
    if isinstance(samples, list):  # a sharded result keeps its shards' order
        samples.sort(key=lambda s: (s.ts, s.user_id))  # points come out as their labels complete
    return samples


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
