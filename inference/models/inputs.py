"""Model arrays from the features read-out: the one place that turns features into model inputs.

The features themselves are defined once in ``inference.features`` (state, read-out at a time,
pair features, candidates) and replayed for training by ``inference.training.dataset``; this module
only arranges them for the models: per (user, candidate) pair rows, the recent sequence as item
buckets / category ids / ages, and the labels. ``sample_inputs`` serves both training (from the
builder's points) and serving (from the online store's read-out), so the two cannot drift apart.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from inference.events import EventRecord
from inference.features import (
    PAIR_FEATURE_NAMES,
    SEQUENCE_LENGTH,
    SEQUENCE_TYPES,
    PopulationFeatures,
    UserFeatures,
    candidate_categories,
    pair_features,
)
from inference.features.definitions import SESSION_IDLE_S
from inference.training.dataset import PointKey, training_points

__all__ = [
    "INPUTS_VERSION",
    "PAIR_FEATURE_NAMES",
    "SEQUENCE_LENGTH",
    "CATEGORIES_PER_EVENT",
    "Sample",
    "item_bucket",
    "population_from_counts",
    "sample_inputs",
    "samples_build",
    "sequence_arrays",
    "users_at",
]

# bump when the arrays below change meaning (the pair features carry FEATURE_SCHEMA_VERSION)
INPUTS_VERSION = 3
CATEGORIES_PER_EVENT = 4
MAX_CANDIDATES = 100
# the sequence's kinds: 1 + 2 * (the type's index in SEQUENCE_TYPES) + (1 if the entry opens a session)
SEQUENCE_KINDS = 1 + 2 * len(SEQUENCE_TYPES)
_TYPE_INDEX = {kind: i for i, kind in enumerate(SEQUENCE_TYPES)}


@dataclass(frozen=True)
class Sample:
    """Model inputs for one user at one time, with the labels when known.

    ``candidates`` are category indices; ``rows`` the pair features [n, F]; ``items``/``cats``/``ages``/
    ``kinds`` the recent sequence; ``labels`` the next-H counts of each candidate (zeros when unknown).
    """

    user_id: str
    ts: float
    candidates: np.ndarray
    rows: np.ndarray
    items: np.ndarray
    cats: np.ndarray
    ages: np.ndarray
    labels: np.ndarray
    # the event type and session start of each sequence entry (``sequence_kind``; 0 = padding)
    kinds: np.ndarray = field(default_factory=lambda: np.zeros(SEQUENCE_LENGTH, dtype=np.int64))


@lru_cache(
    maxsize=1 << 16
)  # the same items recur (a user's sequence at every request, every training sample)
def item_bucket(item_id: str, buckets: int) -> int:
    """Stable hash of an item id into 1..buckets-1 (0 is padding)."""
    if not item_id:
        return 0
    return 1 + zlib.crc32(item_id.encode("utf-8")) % (buckets - 1)


def sequence_arrays(
    user: UserFeatures, category_index: Mapping[str, int], item_buckets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The recent sequence, newest last, left-padded: item buckets [L], category ids [L, K] (index+1,
    0 = none), log1p(seconds before ``user.now``) [L] and kinds [L] (the event type and whether the
    entry opens a session, after a gap over ``SESSION_IDLE_S``; 0 = padding)."""
    items = np.zeros(SEQUENCE_LENGTH, dtype=np.int64)
    cats = np.zeros((SEQUENCE_LENGTH, CATEGORIES_PER_EVENT), dtype=np.int64)
    ages = np.zeros(SEQUENCE_LENGTH, dtype=np.float32)
    kinds = np.zeros(SEQUENCE_LENGTH, dtype=np.int64)
    recent = user.recent[-SEQUENCE_LENGTH:]
    if not recent:
        return items, cats, ages, kinds
    offset = SEQUENCE_LENGTH - len(recent)
    now = user.now
    # whole slices from lists: numpy's per-element assignment costs more than the values themselves
    items[offset:] = [item_bucket(item.item_id, item_buckets) for item in recent]
    ages[offset:] = [math.log1p(max(0.0, now - item.ts)) for item in recent]
    previous = -math.inf
    codes = []
    for item in recent:
        codes.append(1 + 2 * _TYPE_INDEX.get(item.kind, 0) + (item.ts - previous > SESSION_IDLE_S))
        previous = item.ts
    kinds[offset:] = codes
    for i, item in enumerate(recent, offset):
        ids = [category_index[c] + 1 for c in item.categories if c in category_index][:CATEGORIES_PER_EVENT]
        if ids:
            cats[i, : len(ids)] = ids
    return items, cats, ages, kinds


def sample_inputs(
    user_id: str,
    user: UserFeatures,
    population: PopulationFeatures,
    *,
    category_index: Mapping[str, int],
    popular: Sequence[str],
    item_buckets: int,
    labels: Mapping[str, int] | None = None,
    sequence: bool = True,
) -> Sample:
    """The model inputs of one user at ``user.now`` (the same function for training and serving).

    ``sequence=False`` (serving a model that scores only the pair rows) leaves the recent-sequence
    arrays empty (all padding) instead of building them: about a third of the work for such a model."""
    candidates = candidate_categories(user, popular, known=category_index, limit=MAX_CANDIDATES)
    if sequence:
        items, cats, ages, kinds = sequence_arrays(user, category_index, item_buckets)
    else:
        items = np.zeros(SEQUENCE_LENGTH, dtype=np.int64)
        cats = np.zeros((SEQUENCE_LENGTH, CATEGORIES_PER_EVENT), dtype=np.int64)
        ages = np.zeros(SEQUENCE_LENGTH, dtype=np.float32)
        kinds = np.zeros(SEQUENCE_LENGTH, dtype=np.int64)
    return Sample(
        user_id=user_id,
        ts=user.now,
        candidates=np.array([category_index[c] for c in candidates], dtype=np.int64),
        rows=pair_features(user, population, candidates),
        items=items,
        cats=cats,
        ages=ages,
        labels=np.array([(labels or {}).get(c, 0) for c in candidates], dtype=np.float32),
        kinds=kinds,
    )


def population_from_counts(counts: Mapping[str, float], now: float = 0.0) -> PopulationFeatures:
    """A population read-out from saved counts (a model's fallback when the store has none)."""
    total = float(sum(counts.values()))
    return PopulationFeatures(
        now=now,
        total=total,
        counts=dict(counts),
        share_7d={c: v / total for c, v in counts.items()} if total else {},
        ranking=tuple(sorted(counts, key=lambda c: (-counts[c], c))),
    )


def samples_build(
    events: Iterable[EventRecord],
    *,
    horizon: int,
    category_index: Mapping[str, int],
    popular_k: int,
    item_buckets: int,
    every: int | None = 5,
    min_history: int = 5,
    start_index: Mapping[str, int] | None = None,
    stop_index: Mapping[str, int] | None = None,
    seed: int = 0,
    returns: bool = False,
    prediction_times: Mapping[str, Sequence[float]] | None = None,
    populations: Mapping[PointKey, PopulationFeatures] | None = None,
) -> Iterator[Sample]:
    """Training samples from the builder's points (``inference.training.dataset.training_points``):
    features strictly before each point, labels from the user's next ``horizon`` interest events among
    the events passed in (positions and ``start_index``/``stop_index`` count interest events).

    ``prediction_times`` adds points at those times (kept only with ``min_history`` interest events
    before them and a label after them); ``populations`` are a population pass's read-outs (the
    distributed builder's partitions)."""
    for point in training_points(
        events,
        horizon=horizon,
        sample_every=every,
        min_history=min_history,
        start_index=start_index,
        stop_index=stop_index,
        seed=seed,
        returns=returns,
        prediction_times=prediction_times,
        populations=populations,
    ):
        if point.requested and (point.position < min_history or not point.labels):
            continue
        yield sample_inputs(
            point.user_id,
            point.user,
            point.population,
            category_index=category_index,
            popular=point.population.popular(popular_k),
            item_buckets=item_buckets,
            labels=point.labels,
        )


def users_at(
    events: Iterable[EventRecord], prediction_times: Mapping[str, float]
) -> dict[str, tuple[UserFeatures, PopulationFeatures]]:
    """Each user's and the population's features at the user's prediction time, from ``events``."""
    result: dict[str, tuple[UserFeatures, PopulationFeatures]] = {}
    for point in training_points(
        events, horizon=1, sample_every=None, prediction_times={u: [t] for u, t in prediction_times.items()}
    ):
        if point.requested:
            result[point.user_id] = (point.user, point.population)
    return result
