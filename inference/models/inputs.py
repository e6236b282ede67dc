"""What the models see: per (user, candidate category) pair rows, the recent sequence, and samples.

This module is the one place that turns a user's event history into model inputs, so that training
(replaying events in time order) and serving (a user's current state) compute them with the same
code. ``UserState`` is the per-user state (updated one event at a time), ``PopulationState`` the
per-category population statistics; ``pair_rows`` and ``sequence_arrays`` are pure functions of them.
``samples_build`` replays a time-ordered event list and emits point-in-time correct training samples:
features from events strictly before the prediction point, labels from the user's next H events
among the events passed in (pass only the training side and labels never look past it).
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from inference.events import EventRecord

__all__ = [
    "INPUTS_VERSION",
    "PAIR_FEATURE_NAMES",
    "SEQUENCE_LENGTH",
    "CATEGORIES_PER_EVENT",
    "UserState",
    "PopulationState",
    "Sample",
    "sample_inputs",
    "candidate_categories",
    "pair_rows",
    "sequence_arrays",
    "item_bucket",
    "samples_build",
    "states_replay",
]

INPUTS_VERSION = 1
HALF_LIVES_S = (3_600.0, 86_400.0, 7 * 86_400.0, 30 * 86_400.0)
SEQUENCE_LENGTH = 50
CATEGORIES_PER_EVENT = 4
TREND_HALF_LIFE_S = 7 * 86_400.0
NEVER_SEEN_S = 10 * 365 * 86_400.0

PAIR_FEATURE_NAMES = (
    "log_count",
    "count_share",
    *(f"log_decayed_{int(h)}s" for h in HALF_LIVES_S),
    *(f"decayed_share_{int(h)}s" for h in HALF_LIVES_S),
    "recent20_count",
    "recent50_count",
    "log_seconds_since_seen",
    "never_seen",
    "log_events_since_seen",
    "log_user_events",
    "frequency_rank",
    "last_event_decayed_share",
    "population_share",
    "population_trend",
    "candidate_is_popular_only",
)


@dataclass
class UserState:
    """One user's history summary, updated one event at a time (``observe``)."""

    events: int = 0
    last_ts: float = 0.0
    counts: dict[str, float] = field(default_factory=dict)
    decayed: list[dict[str, float]] = field(default_factory=lambda: [{} for _ in HALF_LIVES_S])
    last_seen_ts: dict[str, float] = field(default_factory=dict)
    last_seen_index: dict[str, int] = field(default_factory=dict)
    recent: deque[tuple[str, tuple[str, ...], float]] = field(
        default_factory=lambda: deque(maxlen=SEQUENCE_LENGTH)
    )

    def observe(self, event: EventRecord) -> None:
        if self.events:
            gap = max(0.0, event.ts - self.last_ts)
            if gap > 0:
                for table, half_life in zip(self.decayed, HALF_LIVES_S, strict=True):
                    factor = 0.5 ** (gap / half_life)
                    for category in table:
                        table[category] *= factor
        for category in event.categories:
            self.counts[category] = self.counts.get(category, 0.0) + 1.0
            for table in self.decayed:
                table[category] = table.get(category, 0.0) + 1.0
            self.last_seen_ts[category] = event.ts
            self.last_seen_index[category] = self.events
        self.recent.append((event.item_id, event.categories, event.ts))
        self.events += 1
        self.last_ts = max(self.last_ts, event.ts)


@dataclass
class PopulationState:
    """Category popularity (all-time counts) and a 7-day decayed count for the trend."""

    counts: dict[str, float] = field(default_factory=dict)
    decayed: dict[str, float] = field(default_factory=dict)
    last_ts: float = 0.0
    total: float = 0.0
    _popular: tuple[tuple[float, int], list[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def observe(self, event: EventRecord) -> None:
        if event.ts > self.last_ts and self.decayed:
            factor = 0.5 ** ((event.ts - self.last_ts) / TREND_HALF_LIFE_S)
            for category in self.decayed:
                self.decayed[category] *= factor
        self.last_ts = max(self.last_ts, event.ts)
        for category in event.categories:
            self.counts[category] = self.counts.get(category, 0.0) + 1.0
            self.decayed[category] = self.decayed.get(category, 0.0) + 1.0
            self.total += 1.0

    def popular(self, k: int) -> list[str]:
        """The ``k`` most popular categories (cached until the next event: serving asks per request)."""
        key = (self.total, k)
        cached = self._popular
        if cached is None or cached[0] != key:
            cached = (key, sorted(self.counts, key=lambda c: (-self.counts[c], c))[:k])
            self._popular = cached
        return list(cached[1])


def candidate_categories(
    user: UserState, popular: Sequence[str], known: Mapping[str, int], *, limit: int = 100
) -> list[str]:
    """The user's own categories (most frequent first, at most ``limit - len(popular)``) then the
    popular ones, restricted to ``known``: at most ``limit`` candidates however many categories exist."""
    own = sorted(user.counts, key=lambda c: (-user.counts[c], c))[: max(0, limit - len(popular))]
    seen: dict[str, None] = {}
    for category in (*own, *popular):
        if category in known:
            seen.setdefault(category, None)
    return list(seen)[:limit]


def pair_rows(
    user: UserState, population: PopulationState, candidates: Sequence[str], now: float
) -> np.ndarray:
    """The tabular features of each (user, candidate) pair at time ``now``: [len(candidates), F]."""
    rows = np.zeros((len(candidates), len(PAIR_FEATURE_NAMES)), dtype=np.float32)
    if not candidates:
        return rows
    gap = max(0.0, now - user.last_ts) if user.events else 0.0
    factors = [0.5 ** (gap / h) for h in HALF_LIVES_S]
    decayed_totals = [sum(t.values()) * f for t, f in zip(user.decayed, factors, strict=True)]
    count_total = sum(user.counts.values())
    recent20: dict[str, int] = {}
    recent50: dict[str, int] = {}
    for position, (_, categories, _) in enumerate(reversed(user.recent)):
        for category in categories:
            recent50[category] = recent50.get(category, 0) + 1
            if position < 20:
                recent20[category] = recent20.get(category, 0) + 1
    frequency_order = sorted(user.counts, key=lambda c: -user.counts[c])
    frequency_rank = {c: i for i, c in enumerate(frequency_order)}
    # the "decayed" baseline's view: 1-day half-life measured from the user's last event
    last_event = user.decayed[1]
    last_event_total = sum(last_event.values())
    pop_total = max(population.total, 1.0)
    pop_decayed_total = max(sum(population.decayed.values()), 1e-9)
    n_known = max(len(frequency_order), 1)
    for row, category in enumerate(candidates):
        count = user.counts.get(category, 0.0)
        values = [math.log1p(count), count / count_total if count_total else 0.0]
        decayed = [t.get(category, 0.0) * f for t, f in zip(user.decayed, factors, strict=True)]
        values += [math.log1p(d) for d in decayed]
        values += [d / tot if tot > 0 else 0.0 for d, tot in zip(decayed, decayed_totals, strict=True)]
        values += [recent20.get(category, 0), recent50.get(category, 0)]
        seen_ts = user.last_seen_ts.get(category)
        values += [
            math.log1p(max(0.0, now - seen_ts) if seen_ts is not None else NEVER_SEEN_S),
            0.0 if seen_ts is not None else 1.0,
            math.log1p(user.events - user.last_seen_index[category] if seen_ts is not None else user.events),
            math.log1p(user.events),
            frequency_rank.get(category, n_known) / n_known,
            last_event.get(category, 0.0) / last_event_total if last_event_total else 0.0,
        ]
        share = population.counts.get(category, 0.0) / pop_total
        recent_share = population.decayed.get(category, 0.0) / pop_decayed_total
        values += [share, recent_share / share if share > 0 else 0.0, 0.0 if count else 1.0]
        rows[row] = values
    return rows


def item_bucket(item_id: str, buckets: int) -> int:
    """Stable hash of an item id into 1..buckets-1 (0 is padding)."""
    if not item_id:
        return 0
    return 1 + zlib.crc32(item_id.encode("utf-8")) % (buckets - 1)


def sequence_arrays(
    user: UserState, category_index: Mapping[str, int], item_buckets: int, now: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recent sequence, newest last, left-padded: item buckets [L], category ids [L, K] (index+1,
    0 = none) and log1p(seconds before ``now``) [L]."""
    items = np.zeros(SEQUENCE_LENGTH, dtype=np.int64)
    cats = np.zeros((SEQUENCE_LENGTH, CATEGORIES_PER_EVENT), dtype=np.int64)
    ages = np.zeros(SEQUENCE_LENGTH, dtype=np.float32)
    recent = list(user.recent)[-SEQUENCE_LENGTH:]
    offset = SEQUENCE_LENGTH - len(recent)
    for i, (item_id, categories, ts) in enumerate(recent):
        items[offset + i] = item_bucket(item_id, item_buckets)
        ids = [category_index[c] + 1 for c in categories if c in category_index][:CATEGORIES_PER_EVENT]
        cats[offset + i, : len(ids)] = ids
        ages[offset + i] = math.log1p(max(0.0, now - ts))
    return items, cats, ages


@dataclass(frozen=True)
class Sample:
    """Model inputs for one user at one time, with the labels when known.

    ``candidates`` are category indices; ``rows`` the pair features [n, F]; ``items``/``cats``/``ages``
    the recent sequence; ``labels`` the next-H counts of each candidate (zeros when unknown).
    """

    user_id: str
    ts: float
    candidates: np.ndarray
    rows: np.ndarray
    items: np.ndarray
    cats: np.ndarray
    ages: np.ndarray
    labels: np.ndarray


def sample_inputs(
    user_id: str,
    user: UserState,
    population: PopulationState,
    now: float,
    *,
    category_index: Mapping[str, int],
    popular: Sequence[str],
    item_buckets: int,
    labels: Mapping[str, int] | None = None,
) -> Sample:
    """The model inputs of one user at ``now`` (the same function for training and serving)."""
    candidates = candidate_categories(user, popular, category_index)
    items, cats, ages = sequence_arrays(user, category_index, item_buckets, now)
    return Sample(
        user_id=user_id,
        ts=now,
        candidates=np.array([category_index[c] for c in candidates], dtype=np.int64),
        rows=pair_rows(user, population, candidates, now),
        items=items,
        cats=cats,
        ages=ages,
        labels=np.array([(labels or {}).get(c, 0) for c in candidates], dtype=np.float32),
    )


def samples_build(
    events: Sequence[EventRecord],
    *,
    horizon: int,
    category_index: Mapping[str, int],
    popular_k: int,
    item_buckets: int,
    every: int = 5,
    min_history: int = 5,
    start_index: Mapping[str, int] | None = None,
    stop_index: Mapping[str, int] | None = None,
    seed: int = 0,
) -> Iterator[Sample]:
    """Replay time-ordered ``events`` and yield samples about every ``every`` events per user.

    A user's prediction points are event positions i >= ``min_history`` (and >= ``start_index[user]``,
    < ``stop_index[user]`` when given) at a seeded random offset; features come from the user's events
    before position i (and the population's events before it in time order), labels from positions
    i .. i+horizon-1 of the events passed in. Samples whose next events carry no category are skipped.
    """
    rng = np.random.default_rng(seed)
    by_user: dict[str, list[EventRecord]] = {}
    for event in events:
        by_user.setdefault(event.user_id, []).append(event)
    points: dict[str, set[int]] = {}
    for user_id, user_events in by_user.items():
        lo = max(min_history, (start_index or {}).get(user_id, 0))
        hi = min(len(user_events), (stop_index or {}).get(user_id, len(user_events)))
        if hi <= lo:
            continue
        offset = int(rng.integers(0, every))
        points[user_id] = set(range(lo + offset, hi, every))
    population = PopulationState()
    states: dict[str, UserState] = {}
    positions: dict[str, int] = {}
    popular: list[str] = []
    popular_at = -1.0
    for event in events:
        user_id = event.user_id
        position = positions.get(user_id, 0)
        state = states.setdefault(user_id, UserState())
        if position in points.get(user_id, ()):
            labels: dict[str, int] = {}
            for future_event in by_user[user_id][position : position + horizon]:
                for category in future_event.categories:
                    labels[category] = labels.get(category, 0) + 1
            if labels:
                if population.total != popular_at:  # the popular list changes only with new events
                    popular, popular_at = population.popular(popular_k), population.total
                yield sample_inputs(
                    user_id,
                    state,
                    population,
                    event.ts,
                    category_index=category_index,
                    popular=popular,
                    item_buckets=item_buckets,
                    labels=labels,
                )
        state.observe(event)
        population.observe(event)
        positions[user_id] = position + 1


def states_replay(events: Iterable[EventRecord]) -> tuple[dict[str, UserState], PopulationState]:
    """Every user's state and the population state after all ``events`` (time-ordered)."""
    population = PopulationState()
    states: dict[str, UserState] = {}
    for event in events:
        states.setdefault(event.user_id, UserState()).observe(event)
        population.observe(event)
    return states, population
