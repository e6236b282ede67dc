"""Feature state: the flat fields ``ops`` writes, held in process (memory store, training replay).

``FeatureState.apply(ops)`` is the in-process twin of the Redis store's script: sums, maxima, the
capped sequence, the latest sessions, the decay epochs and the return masks, with the same semantics. ``states_replay``
replays time-ordered events into per-user states and the population state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from inference.events import EventRecord
from inference.features.definitions import SEQUENCE_LENGTH, SESSIONS_KEPT
from inference.features.ops import Ops, SeqItem, event_ops

__all__ = ["FeatureState", "states_replay"]

# (label, epoch) -> "d:<label>:<epoch>:" (a few per half-life and year of history)
_PREFIXES: dict[tuple[str, int], str] = {}


def _prefix(label: str, k: int) -> str:
    prefix = _PREFIXES[(label, k)] = f"d:{label}:{k}:"
    return prefix


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
        for label, words in ops.marks.items():
            for w in sorted(words):
                self._mark(label, w, words[w])
        for label, epochs in ops.decay.items():
            if len(epochs) == 1:  # the usual case: one event, or a batch within one epoch
                ((k, terms),) = epochs.items()
                newest = maxima.get("e:" + label)
                if newest is not None and newest - 1 <= k <= newest:  # no roll-over: add in place (hot)
                    prefix = _PREFIXES.get((label, k)) or _prefix(label, k)
                    for category, term in terms.items():
                        name = prefix + category
                        sums[name] = sums.get(name, 0.0) + term
                else:
                    self._decay(label, k, terms)
            else:
                for k in sorted(epochs):
                    self._decay(label, k, epochs[k])

    def _advance(self, newest_key: str, tag: str, label: str, k: int) -> list[tuple[str, float]] | None:
        """Make generation ``k`` of ``label`` (a decay epoch, tag ``d``; a return word, tag ``r``) current,
        keeping only the newest generation and the one before (see ``ops``). Returns the fields of the
        generations it made stale, removed (a roll-over: rare, so a scan of the fields is fine); ``None``
        when ``k`` is older than the one before the newest (not kept)."""
        sums, maxima = self.sums, self.maxima
        newest = maxima.get(newest_key)
        if newest is not None and k <= newest:
            return [] if k >= newest - 1 else None
        removed: list[tuple[str, float]] = []
        if newest is not None:
            stale = tuple(f"{tag}:{label}:{j}:" for j in (int(newest) - 1, int(newest)) if j < k - 1)
            if stale:
                removed = [(name, sums.pop(name)) for name in [name for name in sums if name.startswith(stale)]]
        maxima[newest_key] = float(k)
        return removed

    def _decay(self, label: str, k: int, terms: dict[str, float]) -> None:
        """Add one epoch's terms, keeping only the newest epoch and the one before (see ``ops``)."""
        if self._advance("e:" + label, "d", label, k) is None:
            return  # older than anything a read-out uses (and would be deleted at the next roll-over)
        sums = self.sums
        prefix = _PREFIXES.get((label, k)) or _prefix(label, k)
        for category, term in terms.items():
            name = prefix + category
            sums[name] = sums.get(name, 0.0) + term

    def _mark(self, label: str, w: int, masks: dict[str, int]) -> None:
        """OR one word's return masks in, folding the masks older than the word before into counts."""
        stale = self._advance("rw:" + label, "r", label, w)
        if stale is None:
            return  # over a word late: not counted (the bound of the return counts' order independence)
        sums = self.sums
        for name, mask in stale:
            folded = f"ro:{label}:{name[len(label) + 3 :].partition(':')[2]}"  # r:<label>:<w>:<category>
            sums[folded] = sums.get(folded, 0.0) + int(mask).bit_count()
        prefix = f"r:{label}:{w}:"
        for category, mask_in in masks.items():
            name = prefix + category
            sums[name] = float(int(sums.get(name, 0.0)) | mask_in)

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
