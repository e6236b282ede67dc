"""Training-set builder: replays time-ordered events through the feature operations of the online store.

``training_points(events, ...)`` streams events (records or chunks of records, time-ordered,
bots already excluded by tracking) through ``inference.features.event_ops`` exactly as the online
store applies them, and yields :class:`LabeledPoint` s:

- features strictly from events before the prediction point (a snapshot taken *before* the event at
  that point is applied), the same read-out the online store gives at that moment;
- labels: the categories of the user's next ``horizon`` interest events, counted, from the events
  passed in only (pass only the training side and labels never look past it);
- prediction points sampled across each user's history (every ``sample_every``-th interest event
  from a deterministic per-user offset), at every *return* (``returns``: before the first interest
  event after at least ``SESSION_IDLE_S`` without one, so the samples hold the gaps real visitors come
  back after: the next session, the next day, the next week, not only the moments inside a session),
  or at caller-chosen times (``prediction_times``).

Memory is bounded by the per-user states and the points still waiting for their labels, not by the
number of events: a million events stream through in minutes (``benchmarks/features.py``).
The model arrays (candidates, pair rows, sequences) are made from the points by
``inference.models.inputs``; ``category_vocabulary`` fixes the category index.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Container, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from inference.events import EventRecord
from inference.features import (
    INTEREST_TYPES,
    FeatureState,
    PopulationFeatures,
    UserFeatures,
    event_ops,
    population_features,
    user_features,
)
from inference.features.definitions import SESSION_IDLE_S

__all__ = [
    "LabeledPoint",
    "PointKey",
    "category_vocabulary",
    "events_flatten",
    "features_at_cutoff",
    "training_points",
]


@dataclass(frozen=True, slots=True)
class LabeledPoint:
    """One prediction point: features strictly before ``ts``, labels from the user's next events."""

    user_id: str
    ts: float
    user: UserFeatures  # the user's features at ts from earlier events (empty when none)
    population: PopulationFeatures  # the population's features from earlier events
    labels: dict[str, int]  # category -> count in the user's next `horizon` interest events
    position: int  # how many interest events of the user came before the point
    requested: bool = False  # from `prediction_times` (labels may be empty) rather than sampled


# a prediction point as the population pass records it: (user, time, position, requested)
PointKey = tuple[str, float, int, bool]


def events_flatten(events: Iterable[EventRecord] | Iterable[Sequence[EventRecord]]) -> Iterator[EventRecord]:
    """Records from an iterable of records or of chunks (lists) of records."""
    for entry in events:
        if isinstance(entry, EventRecord):
            yield entry
        else:
            yield from entry


def category_vocabulary(categories: Iterable[str]) -> dict[str, int]:
    """Category -> index (0-based, in the order given, without repeats)."""
    vocabulary: dict[str, int] = {}
    for category in categories:
        if category not in vocabulary:
            vocabulary[category] = len(vocabulary)
    return vocabulary


def _offset(user_id: str, seed: int, every: int) -> int:
    return zlib.crc32(f"{seed}:{user_id}".encode()) % every


class _Pending:
    __slots__ = ("point", "labels", "remaining")

    def __init__(
        self, point: tuple[str, float, UserFeatures, PopulationFeatures, int, bool], horizon: int
    ) -> None:
        self.point = point
        self.labels: dict[str, int] = {}
        self.remaining = horizon


def training_points(
    events: Iterable[EventRecord] | Iterable[Sequence[EventRecord]],
    *,
    horizon: int = 10,
    sample_every: int | None = 5,
    min_history: int = 5,
    prediction_times: Mapping[str, Sequence[float]] | None = None,
    start_index: Mapping[str, int] | None = None,
    stop_index: Mapping[str, int] | None = None,
    seed: int = 0,
    population_refresh_events: int = 1000,
    returns: bool = False,
    users: Container[str] | None = None,
    population_log: MutableMapping[PointKey, PopulationFeatures] | None = None,
    populations: Mapping[PointKey, PopulationFeatures] | None = None,
) -> Iterator[LabeledPoint]:
    """Replay ``events`` (time order) and yield labelled prediction points; see the module docstring.

    - ``sample_every``: a point before every ``sample_every``-th interest event of each user, from
      position ``min_history`` on (and ``>= start_index[user]``, ``< stop_index[user]`` when given),
      at a per-user offset drawn from ``seed``; ``None`` or 0 samples nothing (only requested times).
      Sampled points whose next events carry no category are skipped.
    - ``prediction_times``: user -> times; a point at each, with the features of the events before
      that time (ties: events at exactly that time are *not* included), always yielded.
    - ``returns``: also a point before each interest event that follows the user's previous one by at
      least ``SESSION_IDLE_S`` (from position ``min_history`` on, within ``start_index``/``stop_index``).
    - ``population_refresh_events``: sampled points reuse the population read-out for up to this many
      population events (it changes slowly; 0 = exact at every point). Requested points always see
      the exact population at their time.

    Points are yielded when their labels are complete (or at the end of the stream), so not
    necessarily in time order.

    The distributed builder (``inference.training.distributed``) runs this same replay in two parts:

    - the *population pass*: ``users=()`` and a ``population_log`` dict replay every event for the
      population state and every user's sampling decisions only (no user state, nothing yielded) and
      record the population read-out each point sees, keyed by :data:`PointKey`;
    - per partition of visitors: only those visitors' events with ``populations`` (that log, or its
      part for them): the points take the recorded read-outs instead of a population replayed from a
      part of the events, so each visitor's points are exactly those of the whole replay.
    """
    if horizon < 1:
        raise ValueError("horizon must be at least 1")
    every = int(sample_every or 0)
    states: dict[str, FeatureState] = {}
    positions: dict[str, int] = {}
    pending: dict[str, list[_Pending]] = {}
    population = FeatureState()
    population_version = 0
    cached: tuple[int, PopulationFeatures] | None = None
    requests: list[tuple[float, str]] = [
        (float(t), user_id) for user_id, times in (prediction_times or {}).items() for t in times
    ]
    heapq.heapify(requests)
    offsets: dict[str, int] = {}
    last_interest: dict[str, float] = {}  # user -> time of their latest interest event (for ``returns``)
    last_ts = float("-inf")

    def population_at(now: float, exact: bool) -> PopulationFeatures:
        nonlocal cached
        if cached is not None:
            version, features = cached
            if version == population_version or (
                not exact and population_version - version < population_refresh_events
            ):
                return features
        features = population_features(population, now)
        cached = (population_version, features)
        return features

    def snapshot(user_id: str, now: float, *, requested: bool) -> None:
        position = positions.get(user_id, 0)
        if populations is not None:
            at = populations[(user_id, now, position, requested)]
        else:
            at = population_at(now, requested)
            if population_log is not None:
                population_log[(user_id, now, position, requested)] = at
        if users is not None and user_id not in users:
            return
        point = (user_id, now, user_features(states.get(user_id), now), at, position, requested)
        pending.setdefault(user_id, []).append(_Pending(point, horizon))

    def emit(entry: _Pending) -> LabeledPoint | None:
        user_id, ts, user, pop, position, requested = entry.point
        if not entry.labels and not requested:
            return None
        return LabeledPoint(user_id, ts, user, pop, entry.labels, position, requested)

    for record in events_flatten(events):
        ts = float(record.ts)
        if ts < last_ts:
            raise ValueError(f"events must be in time order: {ts} after {last_ts}")
        last_ts = ts
        while requests and requests[0][0] <= ts:
            at, user_id = heapq.heappop(requests)
            snapshot(user_id, at, requested=True)
        user_id = record.user_id
        interest = record.type in INTEREST_TYPES
        if interest:
            position = positions.get(user_id, 0)
            if (every or returns) and position >= min_history:
                sampled = False
                if every:
                    offset = offsets.get(user_id)
                    if offset is None:
                        offset = offsets[user_id] = _offset(user_id, seed, every)
                    sampled = (position - offset) % every == 0
                if not sampled and returns:
                    sampled = ts - last_interest.get(user_id, ts) >= SESSION_IDLE_S
                if (
                    sampled
                    and position >= (start_index or {}).get(user_id, 0)
                    and position < (stop_index or {}).get(user_id, 1 << 62)
                ):
                    snapshot(user_id, ts, requested=False)
            waiting = pending.get(user_id)
            if waiting:
                categories = tuple(dict.fromkeys(c for c in record.categories if c))
                done = 0
                for entry in waiting:
                    labels = entry.labels
                    for category in categories:
                        labels[category] = labels.get(category, 0) + 1
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        done += 1
                if done:
                    # entries are appended in time order, so the finished ones are a prefix
                    for entry in waiting[:done]:
                        point = emit(entry)
                        if point is not None:
                            yield point
                    del waiting[:done]
            positions[user_id] = position + 1
            last_interest[user_id] = ts
        user_ops, population_ops = event_ops(record)
        if users is None or user_id in users:
            state = states.get(user_id)
            if state is None:
                state = states[user_id] = FeatureState()
            state.apply(user_ops)
        if population_ops and populations is None:  # recorded read-outs need no population state
            population.apply(population_ops)
            population_version += 1
    while requests:
        at, user_id = heapq.heappop(requests)
        snapshot(user_id, at, requested=True)
    for waiting in pending.values():
        for entry in waiting:
            point = emit(entry)
            if point is not None:
                yield point


def features_at_cutoff(
    user_events: Iterable[EventRecord],
    *,
    now: float,
    population: FeatureState | None = None,
) -> tuple[UserFeatures, PopulationFeatures]:
    """One user's features at ``now`` from their events before it (later ones are ignored), and the
    population's from ``population`` (a ``states_replay`` result; empty when ``None``).

    For many users at one cut-off, ``training_points(..., prediction_times=...)`` does it in one pass.
    """
    state = FeatureState()
    for record in user_events:
        if record.ts < now:
            state.apply(event_ops(record)[0])
    return user_features(state, now), population_features(population, now)
