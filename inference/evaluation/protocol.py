"""The split of EVALUATION.md: which events the models may see, and what each test user does next.

- ``time`` split: the cut-off T is the q-quantile of all timestamps; test users have at least
  ``min_history`` (5) events before T and at least one at or after T; their prediction is made at T.
- ``user`` split: every user with at least ``min_user_events`` (30) events is cut after the first
  ``q`` (80%) of their own events (ordered by time, file order within a timestamp).

The training side (``Split.train``) holds every event before the cut-off(s): users who are never
tested contribute all their events under the user split. The truth of a case is the categories of the
user's next ``horizon`` events, counted (a category seen 4 times has relevance 4); a case whose next
events carry no category at all is dropped (its NDCG is undefined).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference.events import EventRecord

__all__ = ["EvaluationCase", "Split", "split_by_time", "split_by_user", "split_events", "next_categories"]

# Under the user split the prediction is made just after the user's last seen event, so that features
# defined as "events strictly before t" include that event.
AFTER_LAST_EVENT_S = 1.0


@dataclass(frozen=True, slots=True)
class EvaluationCase:
    user_id: str
    prediction_ts: float
    history: tuple[EventRecord, ...]  # the user's events before the cut-off, oldest first
    truth: dict[str, int]  # category -> count in the next `horizon` events


@dataclass(frozen=True, slots=True)
class Split:
    kind: str
    train: tuple[EventRecord, ...]  # everything before the cut-off(s), time-ordered
    cases: tuple[EvaluationCase, ...]
    cutoff: float | None  # T for the time split, None for the user split


def next_categories(events: Sequence[EventRecord], horizon: int) -> dict[str, int]:
    """Counted categories of the first ``horizon`` events (each event counts once per category)."""
    counts: Counter[str] = Counter()
    for event in events[:horizon]:
        counts.update(event.categories)
    return dict(counts)


def _by_user(events: Sequence[EventRecord]) -> dict[str, list[EventRecord]]:
    grouped: dict[str, list[EventRecord]] = defaultdict(list)
    for event in events:
        grouped[event.user_id].append(event)
    return grouped


def _ordered(events: Sequence[EventRecord]) -> list[EventRecord]:
    return sorted(events, key=lambda e: e.ts)  # stable: file order within a timestamp


def split_by_time(
    events: Sequence[EventRecord], *, quantile: float = 0.8, horizon: int = 10, min_history: int = 5
) -> Split:
    ordered = _ordered(events)
    if not ordered:
        return Split("time", (), (), None)
    cutoff = float(np.quantile(np.array([e.ts for e in ordered], dtype=np.float64), quantile))
    train = tuple(e for e in ordered if e.ts < cutoff)
    cases = []
    for user_id, user_events in _by_user(ordered).items():
        before = [e for e in user_events if e.ts < cutoff]
        after = [e for e in user_events if e.ts >= cutoff]
        if len(before) < min_history or not after:
            continue
        truth = next_categories(after, horizon)
        if truth:
            cases.append(EvaluationCase(user_id, cutoff, tuple(before), truth))
    return Split("time", train, tuple(cases), cutoff)


def split_by_user(
    events: Sequence[EventRecord], *, quantile: float = 0.8, horizon: int = 10, min_user_events: int = 30
) -> Split:
    ordered = _ordered(events)
    train: list[EventRecord] = []
    cases = []
    for user_id, user_events in _by_user(ordered).items():
        if len(user_events) < min_user_events:
            train.extend(user_events)
            continue
        cut = int(quantile * len(user_events))
        history, future = user_events[:cut], user_events[cut:]
        train.extend(history)
        truth = next_categories(future, horizon)
        if truth and history:
            cases.append(EvaluationCase(user_id, history[-1].ts + AFTER_LAST_EVENT_S, tuple(history), truth))
    return Split("user", tuple(_ordered(train)), tuple(cases), None)


def split_events(
    events: Sequence[EventRecord], *, kind: str = "time", quantile: float = 0.8, horizon: int = 10
) -> Split:
    if kind == "time":
        return split_by_time(events, quantile=quantile, horizon=horizon)
    if kind == "user":
        return split_by_user(events, quantile=quantile, horizon=horizon)
    raise ValueError(f"unknown split {kind!r}: use time or user")
