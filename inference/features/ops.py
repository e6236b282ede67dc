"""The one definition of how an event changes the feature state: ``event_ops(record)``.

An event becomes a set of operations on flat, named fields. Every operation is commutative: applied
in any order, or coalesced into batches in any way, they leave the same state (``incr`` adds,
``maxima`` and ``sessions`` keep the largest value, ``decay`` adds epoch terms, ``push`` appends to
the capped recent sequence, which the read-out orders by time). So:

- the in-process store applies them to dicts under a lock,
- the Redis store applies the *same* operations server-side (``HINCRBYFLOAT`` / ``ZADD GT`` /
  ``RPUSH`` + ``LTRIM`` / ``HDEL``) inside one ``MULTI`` per batch (atomic: concurrent writers lose
  nothing),
- the training-set builder applies them to dicts while replaying events in time order,

and serving and training cannot drift apart.

Return counts (``marks``): in how many distinct hours / days (``RETURN_BUCKETS``) the user came to a
category over the whole history. Bucket ``b = floor(t / seconds)`` sets bit ``b % W`` of the mask
field ``r:<label>:<w>:<category>``, ``w = floor(b / W)``, ``W = RETURN_WORD_BITS`` (an OR: commutative
and idempotent); the category ``""`` marks the user's own active buckets. Like the decay epochs only
the newest word ``w`` per label and the one before are kept as masks (maximum ``rw:<label>``): a mark
for a newer word first folds the stale masks into counts (``ro:<label>:<category>`` += their bits). A
mark more than one word older than the newest (an event 30 hours / 30 days late) is not counted:
the one exception to order independence, and the bound of it.

Exact exponential decay with additive updates: for a half-life ``h`` and epochs of
``L = EPOCH_HALF_LIVES * h`` seconds, an event at ``t`` adds ``2^((t - E)/h)`` to the field
``d:<label>:<k>:<category>``, ``k = floor(t / L)``, ``E = k * L``. The decayed count at any time
``s`` is ``sum_k S_k * 2^((E_k - s)/h)`` (see ``readout``), exact, with no read-modify-write.
Only the newest epoch ``K`` and ``K - 1`` are kept (older terms weigh under 2^-128 against the
newest event): the state records ``K`` per half-life (maximum ``e:<label>``); a term for a newer
epoch first deletes the epochs it makes stale, a term for an epoch older than ``K - 1`` is
skipped. The result is the same in any order (terms of epochs >= K - 1, summed), and a user's
state holds at most two epochs per half-life and category however long their history.

Field names (user hash): ``n`` interest events, ``c:<cat>`` counts, ``d:<hl>:<k>:<cat>`` decay
terms, ``r:<label>:<w>:<cat>`` / ``ro:<label>:<cat>`` return masks / folded return counts, ``t:<type>`` events by type, ``b:<type>:<cat>`` counts of the ``BEHAVIOUR_TYPES``, ``ai:<cat>`` / ``ac:<cat>`` ad impressions / clicks,
``sn:<session>`` / ``se:<session>`` session events / engaged milliseconds. Maxima: ``last`` (last
interest event), ``ls:<cat>`` last seen, ``dv:<device>`` device last used, ``e:<hl>`` newest decay
epoch, ``rw:<label>`` newest return word. Sessions: session -> its last event (a max); only the ``SESSIONS_KEPT`` most recent sessions
are kept, older ones are pruned with their counters. Population hash: ``n``, ``c:<cat>``,
``d:<hl>:<k>:<cat>`` and maxima ``last``, ``e:<hl>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from inference.events import EventRecord
from inference.features.definitions import (
    AD_CLICK,
    AD_IMPRESSION,
    BEHAVIOUR_TYPES,
    EPOCH_HALF_LIVES,
    HALF_LIVES,
    INTEREST_TYPES,
    POPULATION_HALF_LIVES,
    RETURN_BUCKETS,
    RETURN_WORD_BITS,
)

__all__ = ["SeqItem", "Ops", "event_ops", "decay_term", "epoch_of"]


class SeqItem(NamedTuple):
    """One entry of the recent sequence."""

    item_id: str
    categories: tuple[str, ...]
    ts: float
    kind: str = "page_view"  # the event type (an interest type)


@dataclass(slots=True)
class Ops:
    """Operations on one state (a user's or the population's); merging two is order-independent."""

    incr: dict[str, float] = field(default_factory=dict)
    maxima: dict[str, float] = field(default_factory=dict)
    push: list[SeqItem] = field(default_factory=list)
    sessions: dict[str, float] = field(default_factory=dict)
    # half-life label -> epoch k -> category -> the sum of the events' terms 2^((t - E_k)/h)
    decay: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    # return-bucket label -> word w -> category -> the mask of its buckets (OR)
    marks: dict[str, dict[int, dict[str, int]]] = field(default_factory=dict)

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
        for label, epochs in other.decay.items():
            mine = self.decay.setdefault(label, {})
            for k, terms in epochs.items():
                table = mine.setdefault(k, {})
                for category, term in terms.items():
                    table[category] = table.get(category, 0.0) + term
        sessions = self.sessions
        for session, value in other.sessions.items():
            if value > sessions.get(session, -math.inf):
                sessions[session] = value
        for label, words in other.marks.items():
            mine_words = self.marks.setdefault(label, {})
            for w, masks in words.items():
                ours = mine_words.setdefault(w, {})
                for category, mask in masks.items():
                    ours[category] = ours.get(category, 0) | mask

    def __bool__(self) -> bool:
        return bool(self.incr or self.maxima or self.push or self.sessions or self.decay or self.marks)


def epoch_of(ts: float, half_life: float) -> int:
    return math.floor(ts / (EPOCH_HALF_LIVES * half_life))


def decay_term(ts: float, half_life: float) -> tuple[int, float]:
    """(epoch k, additive term 2^((ts - E_k)/h)) of one event for one half-life."""
    length = EPOCH_HALF_LIVES * half_life
    k = math.floor(ts / length)
    return k, 2.0 ** ((ts - k * length) / half_life)


# per (label, half-life): the current epoch (k, start, end), so that the hot path does no division
# for most events (they arrive in nearly time order; a race merely recomputes an entry)
_EPOCHS: dict[tuple[str, float], tuple[int, float, float]] = {}


def _decay_ops(
    ops: Ops, ts: float, categories: tuple[str, ...], half_lives: tuple[tuple[str, float], ...]
) -> None:
    decay = ops.decay
    for label, half_life in half_lives:
        key = (label, half_life)
        epoch = _EPOCHS.get(key)
        if epoch is None or not epoch[1] <= ts < epoch[2]:
            length = EPOCH_HALF_LIVES * half_life
            k = math.floor(ts / length)
            epoch = _EPOCHS[key] = (k, k * length, (k + 1) * length)
        term = 2.0 ** ((ts - epoch[1]) / half_life)
        table = decay.setdefault(label, {}).setdefault(epoch[0], {})
        for category in categories:
            table[category] = table.get(category, 0.0) + term


def _mark_ops(ops: Ops, ts: float, categories: tuple[str, ...]) -> None:
    marks = ops.marks
    for label, seconds in RETURN_BUCKETS:
        w, bit = divmod(math.floor(ts / seconds), RETURN_WORD_BITS)
        table = marks.setdefault(label, {}).setdefault(w, {})
        mask = 1 << bit
        for category in (*categories, ""):
            table[category] = table.get(category, 0) | mask


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
        if kind in BEHAVIOUR_TYPES:
            for category in categories:
                incr["b:" + kind + ":" + category] = 1.0
        _decay_ops(user, ts, categories, HALF_LIVES)
        _mark_ops(user, ts, categories)
        user.push.append(SeqItem(_printable(record.item_id), categories, ts, kind))
        pincr = population.incr
        pincr["n"] = 1.0
        population.maxima["last"] = ts
        for category in categories:
            pincr["c:" + category] = 1.0
        _decay_ops(population, ts, categories, POPULATION_HALF_LIVES)
    return user, population
