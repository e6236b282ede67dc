"""The one definition of how an event changes the feature state: ``event_ops(record)``.

An event becomes a set of operations on flat, named fields. Every operation is commutative
(``incr`` adds, ``maxima`` keeps the largest value) or harmless to repeat in any order (``drop``
removes an epoch field that no read-out looks at any more; ``push`` appends to the capped recent
sequence, which the read-out orders by time). So:

- the in-process store applies them to dicts under a lock,
- the Redis store applies the *same* operations as ``HINCRBYFLOAT`` / ``ZADD GT`` / ``RPUSH`` +
  ``LTRIM`` / ``HDEL`` inside one ``MULTI`` per batch (atomic: concurrent writers lose nothing),
- the training-set builder applies them to dicts while replaying events in time order,

and serving and training cannot drift apart.

Exact exponential decay with additive updates: for a half-life ``h`` and epochs of
``L = EPOCH_HALF_LIVES * h`` seconds, an event at ``t`` adds ``2^((t - E)/h)`` to the field
``d:<label>:<k>:<category>``, ``k = floor(t / L)``, ``E = k * L``. The decayed count at any time
``s`` is ``sum_k S_k * 2^((E_k - s)/h)`` (see ``readout``), exact, with no read-modify-write.
Epochs more than one behind the newest event's epoch weigh less than 2^-128: the read-out ignores
them, and for half-lives up to a day (whose epochs roll every few days) the writer drops them.

Field names (user hash): ``n`` interest events, ``c:<cat>`` counts, ``d:<hl>:<k>:<cat>`` decay
terms, ``t:<type>`` events by type, ``ai:<cat>`` / ``ac:<cat>`` ad impressions / clicks,
``sn:<session>`` / ``se:<session>`` session events / engaged milliseconds. Maxima: ``last`` (last
interest event), ``ls:<cat>`` last seen, ``dv:<device>`` device last used. Sessions: session ->
its last event (a max); only the ``SESSIONS_KEPT`` most recent sessions are kept, older ones are
pruned with their counters (the only state that would otherwise grow with every visit). Population hash: ``n``, ``c:<cat>``, ``d:<hl>:<k>:<cat>`` and maximum ``last``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from inference.events import EventRecord
from inference.features.definitions import (
    AD_CLICK,
    AD_IMPRESSION,
    EPOCH_HALF_LIVES,
    HALF_LIVES,
    INTEREST_TYPES,
    POPULATION_HALF_LIVES,
)

__all__ = ["SeqItem", "Ops", "event_ops", "decay_term", "epoch_of"]

# half-lives up to a day (epochs up to 128 days) drop the epoch fields two and three epochs back
_DROP_UP_TO_S = 86_400.0


class SeqItem(NamedTuple):
    """One entry of the recent sequence."""

    item_id: str
    categories: tuple[str, ...]
    ts: float


@dataclass(slots=True)
class Ops:
    """Operations on one state (a user's or the population's); merging two is order-independent."""

    incr: dict[str, float] = field(default_factory=dict)
    maxima: dict[str, float] = field(default_factory=dict)
    push: list[SeqItem] = field(default_factory=list)
    drop: set[str] = field(default_factory=set)
    sessions: dict[str, float] = field(default_factory=dict)

    def merge(self, other: Ops) -> None:
        """Coalesce ``other`` into this batch (sums add, maxima keep the larger, pushes append)."""
        incr = self.incr
        for name, delta in other.incr.items():
            incr[name] = incr.get(name, 0.0) + delta
        maxima = self.maxima
        for name, value in other.maxima.items():
            if value > maxima.get(name, -math.inf):
                maxima[name] = value
        self.push.extend(other.push)
        self.drop |= other.drop
        sessions = self.sessions
        for session, value in other.sessions.items():
            if value > sessions.get(session, -math.inf):
                sessions[session] = value

    def __bool__(self) -> bool:
        return bool(self.incr or self.maxima or self.push or self.drop or self.sessions)


def epoch_of(ts: float, half_life: float) -> int:
    return math.floor(ts / (EPOCH_HALF_LIVES * half_life))


def decay_term(ts: float, half_life: float) -> tuple[int, float]:
    """(epoch k, additive term 2^((ts - E_k)/h)) of one event for one half-life."""
    length = EPOCH_HALF_LIVES * half_life
    k = math.floor(ts / length)
    return k, 2.0 ** ((ts - k * length) / half_life)


# per (label, half-life): the current epoch's bounds and field prefixes, so that the hot path formats
# no strings for the epoch (events arrive in nearly time order; a race merely recomputes an entry)
_EPOCHS: dict[tuple[str, float], tuple[float, float, float, str, tuple[str, ...]]] = {}


def _epoch(label: str, half_life: float, ts: float) -> tuple[float, float, float, str, tuple[str, ...]]:
    key = (label, half_life)
    entry = _EPOCHS.get(key)
    if entry is not None and entry[0] <= ts < entry[1]:
        return entry
    length = EPOCH_HALF_LIVES * half_life
    k = math.floor(ts / length)
    stale = (f"d:{label}:{k - 2}:", f"d:{label}:{k - 3}:") if half_life <= _DROP_UP_TO_S else ()
    entry = (k * length, (k + 1) * length, half_life, f"d:{label}:{k}:", stale)
    _EPOCHS[key] = entry
    return entry


def _decay_ops(
    ops: Ops, ts: float, categories: tuple[str, ...], half_lives: tuple[tuple[str, float], ...]
) -> None:
    incr = ops.incr
    drop = ops.drop
    for label, half_life in half_lives:
        start, _, _, prefix, stale = _epoch(label, half_life, ts)
        term = 2.0 ** ((ts - start) / half_life)
        for category in categories:
            name = prefix + category
            incr[name] = incr.get(name, 0.0) + term
            for stale_prefix in stale:
                drop.add(stale_prefix + category)


def _printable(value: str) -> str:
    """Identifiers become field names and list items: no control characters (the Redis store uses
    two as separators). Slugs and ordinary ids pass through untouched (one C-level check)."""
    return value if value.isprintable() else "".join(ch for ch in value if ch.isprintable())


def event_ops(record: EventRecord) -> tuple[Ops, Ops]:
    """(the user's operations, the population's operations) for one accepted, non-bot event.

    Pure: depends on the record only. The population operations are empty for events that are not
    interest events (``INTEREST_TYPES``).
    """
    user = Ops()
    population = Ops()
    ts = float(record.ts)
    kind = record.type
    # each category once per event
    categories = tuple(dict.fromkeys(c for c in map(_printable, record.categories) if c))
    incr = user.incr
    maxima = user.maxima
    incr["t:" + _printable(kind)] = 1.0
    session = _printable(record.session_id)
    if session:
        incr["sn:" + session] = 1.0
        if record.engaged_ms:
            incr["se:" + session] = float(record.engaged_ms)
        user.sessions[session] = ts
    maxima["dv:" + (_printable(record.device) or "other")] = ts
    if kind == AD_IMPRESSION:
        for category in categories:
            incr["ai:" + category] = 1.0
    if kind == AD_CLICK:
        for category in categories:
            incr["ac:" + category] = 1.0
    if kind in INTEREST_TYPES:
        incr["n"] = 1.0
        maxima["last"] = ts
        for category in categories:
            incr["c:" + category] = 1.0
            maxima["ls:" + category] = ts
        _decay_ops(user, ts, categories, HALF_LIVES)
        user.push.append(SeqItem(_printable(record.item_id), categories, ts))
        pincr = population.incr
        pincr["n"] = 1.0
        population.maxima["last"] = ts
        for category in categories:
            pincr["c:" + category] = 1.0
        _decay_ops(population, ts, categories, POPULATION_HALF_LIVES)
    return user, population
