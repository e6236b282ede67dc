"""Feature state: the flat fields ``ops`` writes, held in process (memory store, training replay).

``FeatureState.apply(ops)`` is the in-process twin of the Redis store's pipeline: drops first, then
sums, maxima and the capped sequence, in the same order the Redis commands run. ``states_replay``
replays time-ordered events into per-user states and the population state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from inference.events import EventRecord
from inference.features.definitions import SEQUENCE_LENGTH, SESSIONS_KEPT
from inference.features.ops import Ops, SeqItem, event_ops

__all__ = ["FeatureState", "states_replay"]


@dataclass(slots=True)
class FeatureState:
    """One user's (or the population's) fields: sums, maxima, the recent sequence (oldest first) and
    the most recent sessions (session -> last event)."""

    sums: dict[str, float] = field(default_factory=dict)
    maxima: dict[str, float] = field(default_factory=dict)
    seq: list[SeqItem] = field(default_factory=list)
    sessions: dict[str, float] = field(default_factory=dict)

    def apply(self, ops: Ops) -> None:
        sums = self.sums
        for name in ops.drop:
            sums.pop(name, None)
        for name, delta in ops.incr.items():
            sums[name] = sums.get(name, 0.0) + delta
        maxima = self.maxima
        for name, value in ops.maxima.items():
            current = maxima.get(name)
            if current is None or value > current:
                maxima[name] = value
        if ops.push:
            seq = self.seq
            seq.extend(ops.push)
            if len(seq) > SEQUENCE_LENGTH:
                del seq[:-SEQUENCE_LENGTH]
        if ops.sessions:
            sessions = self.sessions
            for session, value in ops.sessions.items():
                current = sessions.get(session)
                if current is None or value > current:
                    sessions[session] = value
            if len(sessions) > SESSIONS_KEPT:
                # the oldest by (last event, id): the order a Redis sorted set ranks them in
                ranked = sorted(sessions, key=lambda s: (sessions[s], s))
                for session in ranked[: len(ranked) - SESSIONS_KEPT]:
                    del sessions[session]
                    sums.pop("sn:" + session, None)
                    sums.pop("se:" + session, None)

    def copy(self) -> FeatureState:
        return FeatureState(dict(self.sums), dict(self.maxima), list(self.seq), dict(self.sessions))

    def __bool__(self) -> bool:
        return bool(self.sums or self.maxima or self.seq or self.sessions)


def states_replay(events: Iterable[EventRecord]) -> tuple[dict[str, FeatureState], FeatureState]:
    """Every user's state and the population state after ``events`` (time-ordered)."""
    users: dict[str, FeatureState] = {}
    population = FeatureState()
    for record in events:
        user_ops, population_ops = event_ops(record)
        state = users.get(record.user_id)
        if state is None:
            state = users[record.user_id] = FeatureState()
        state.apply(user_ops)
        if population_ops:
            population.apply(population_ops)
    return users, population
