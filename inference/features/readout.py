"""Read-out: the features of a user (and of the population) at a time ``now`` from a state.

``user_features(state, now)`` and ``population_features(state, now)`` are pure functions of the
fields ``ops`` writes, whichever store holds them, so the serving read and the training replay give
the same numbers. Decayed counts are read exactly (see ``ops``): per half-life, the epoch of the
user's last interest event and the one before it; older epochs weigh under 2^-128 and are ignored.

Decayed *shares* (a category's part of the user's decayed total) do not change with ``now`` and are
computed at the last event, so they stay meaningful for users idle for months (absolute decayed
values then underflow towards zero, as they should).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from inference.features.definitions import (
    DEVICES,
    EPOCH_HALF_LIVES,
    HALF_LIVES,
    POPULATION_HALF_LIVES,
    RETURN_BUCKETS,
    SESSION_IDLE_S,
)
from inference.features.ops import SeqItem
from inference.features.state import FeatureState

__all__ = ["UserFeatures", "PopulationFeatures", "user_features", "population_features"]

_Decayed = tuple[dict[str, float], ...]


@dataclass(frozen=True, slots=True)
class UserFeatures:
    """A user's features at ``now``. Mappings are read-only by convention (never mutate them).

    ``decayed[i]`` / ``decayed_share[i]`` follow ``HALF_LIVES[i]`` (1h, 1d, 3d, 7d, 30d).
    ``behaviour[type]`` counts the categories of the ``BEHAVIOUR_TYPES`` events (favourites, carts,
    purchases) per category.
    ``events`` counts interest events only (``INTEREST_TYPES``); ``type_counts`` all events.
    """

    now: float
    events: int = 0
    last_ts: float = 0.0
    counts: dict[str, float] = field(default_factory=dict)
    decayed: _Decayed = field(default_factory=lambda: tuple({} for _ in HALF_LIVES))
    decayed_share: _Decayed = field(default_factory=lambda: tuple({} for _ in HALF_LIVES))
    last_seen_ts: dict[str, float] = field(default_factory=dict)
    # interest events since the category was last seen (1 = in the latest event); only within `recent`
    events_since_seen: dict[str, int] = field(default_factory=dict)
    recent: tuple[SeqItem, ...] = ()  # oldest first, at most SEQUENCE_LENGTH
    type_counts: dict[str, float] = field(default_factory=dict)
    behaviour: dict[str, dict[str, float]] = field(default_factory=dict)
    ad_impressions: dict[str, float] = field(default_factory=dict)
    ad_clicks: dict[str, float] = field(default_factory=dict)
    # ``returns[i]`` follows ``RETURN_BUCKETS[i]`` (hours, days): in how many distinct ones the user came
    # to each category over the whole history; the key "" counts the user's own active ones
    returns: _Decayed = field(default_factory=lambda: tuple({} for _ in RETURN_BUCKETS))
    session_events: float = 0.0  # events of the current session (0 when idle over SESSION_IDLE_S)
    session_engaged_s: float = 0.0
    device: str = "other"
    hour_of_day: int = 0  # UTC, from `now`
    day_of_week: int = 0  # Monday = 0, UTC

    @property
    def is_cold(self) -> bool:
        """No interest event yet: the models serve the population prior."""
        return self.events == 0

    @property
    def total_count(self) -> float:
        return sum(self.counts.values())

    @classmethod
    def empty(cls, now: float) -> UserFeatures:
        tm = time.gmtime(now)
        return cls(now=now, hour_of_day=tm.tm_hour, day_of_week=tm.tm_wday)


@dataclass(frozen=True, slots=True)
class PopulationFeatures:
    """Category popularity at ``now``: all-time counts, decayed shares (1d, 7d) and the ranking."""

    now: float
    events: float = 0.0
    total: float = 0.0  # sum of category counts
    counts: dict[str, float] = field(default_factory=dict)
    share_1d: dict[str, float] = field(default_factory=dict)
    share_7d: dict[str, float] = field(default_factory=dict)
    ranking: tuple[str, ...] = ()  # by count, most popular first (ties by name)

    def popular(self, k: int) -> list[str]:
        return list(self.ranking[:k])

    def share(self, category: str) -> float:
        return self.counts.get(category, 0.0) / self.total if self.total > 0 else 0.0

    def trend(self, category: str) -> float:
        """7-day decayed share over all-time share (>1: rising)."""
        share = self.share(category)
        return self.share_7d.get(category, 0.0) / share if share > 0 else 0.0

    def trend_1d(self, category: str) -> float:
        """1-day decayed share over 7-day decayed share (>1: rising today)."""
        week = self.share_7d.get(category, 0.0)
        return self.share_1d.get(category, 0.0) / week if week > 0 else 0.0

    @classmethod
    def empty(cls, now: float) -> PopulationFeatures:
        return cls(now=now)


def _live_epochs(
    last: float, half_lives: tuple[tuple[str, float], ...], tables: list[dict[str, float]]
) -> dict[str, tuple[dict[str, float], float]]:
    """Field prefix of each epoch still read (the last event's and the one before, per half-life)
    -> (the table its categories add to, the factor taking its terms to the time ``last``)."""
    live: dict[str, tuple[dict[str, float], float]] = {}
    for table, (label, half_life) in zip(tables, half_lives, strict=True):
        length = EPOCH_HALF_LIVES * half_life
        k = math.floor(last / length)
        for j in (k, k - 1):
            live[f"d:{label}:{j}:"] = (table, 2.0 ** ((j * length - last) / half_life))
    return live


def _shares(table: dict[str, float]) -> dict[str, float]:
    total = sum(table.values())
    return {c: v / total for c, v in table.items()} if total > 0 else {}


def user_features(state: FeatureState | None, now: float) -> UserFeatures:
    """The user's features at ``now`` (empty features for a missing or empty state)."""
    if not state:
        return UserFeatures.empty(now)
    sums, maxima = state.sums, state.maxima
    last = maxima.get("last", 0.0)
    at_last: list[dict[str, float]] = [{} for _ in HALF_LIVES]
    live = _live_epochs(last, HALF_LIVES, at_last)
    counts: dict[str, float] = {}
    type_counts: dict[str, float] = {}
    ad_impressions: dict[str, float] = {}
    ad_clicks: dict[str, float] = {}
    behaviour: dict[str, dict[str, float]] = {}
    returns: tuple[dict[str, float], ...] = tuple({} for _ in RETURN_BUCKETS)
    return_of = {label: table for table, (label, _) in zip(returns, RETURN_BUCKETS, strict=True)}
    for name, value in sums.items():
        tag = name[:2]
        if tag == "c:":
            counts[name[2:]] = value
        elif tag == "d:":
            cut = name.find(":", name.find(":", 2) + 1) + 1  # after "d:<label>:<epoch>:"
            entry = live.get(name[:cut])
            if entry is not None:  # an epoch still read
                table, factor = entry
                category = name[cut:]
                table[category] = table.get(category, 0.0) + value * factor
        elif tag == "t:":
            type_counts[name[2:]] = value
        elif tag == "ai":
            ad_impressions[name[3:]] = value
        elif tag == "ac":
            ad_clicks[name[3:]] = value
        elif tag == "b:":
            kind, _, category = name[2:].partition(":")
            behaviour.setdefault(kind, {})[category] = value
        elif tag == "r:":  # r:<label>:<w>:<category>, a mask of buckets
            label, _, rest = name[2:].partition(":")
            returned = return_of.get(label)
            if returned is not None:
                category = rest.partition(":")[2]
                returned[category] = returned.get(category, 0.0) + int(value).bit_count()
        elif tag == "ro":  # ro:<label>:<category>, the buckets of folded masks
            label, _, category = name[3:].partition(":")
            returned = return_of.get(label)
            if returned is not None:
                returned[category] = returned.get(category, 0.0) + value
    last_seen_ts: dict[str, float] = {}
    session, session_ts = "", -math.inf
    device, device_ts = "other", -math.inf
    for name, value in maxima.items():
        tag = name[:3]
        if tag == "ls:":
            last_seen_ts[name[3:]] = value
        elif tag == "dv:":
            if value > device_ts or (value == device_ts and name[3:] > device):
                device, device_ts = name[3:], value
    for name, value in state.sessions.items():
        if value > session_ts or (value == session_ts and name > session):
            session, session_ts = name, value
    session_events = session_engaged_s = 0.0
    if session and now - session_ts <= SESSION_IDLE_S:
        session_events = sums.get("sn:" + session, 0.0)
        session_engaged_s = sums.get("se:" + session, 0.0) / 1000.0
    decayed = tuple(
        {c: v * 2.0 ** ((last - now) / half_life) for c, v in table.items()}
        for table, (_, half_life) in zip(at_last, HALF_LIVES, strict=True)
    )
    recent = tuple(sorted(state.seq, key=lambda item: item.ts))
    events_since_seen: dict[str, int] = {}
    for position, item in enumerate(reversed(recent), start=1):
        for category in item.categories:
            events_since_seen.setdefault(category, position)
    tm = time.gmtime(now)
    return UserFeatures(
        now=now,
        events=int(sums.get("n", 0.0)),
        last_ts=last,
        counts=counts,
        decayed=decayed,
        decayed_share=tuple(_shares(table) for table in at_last),
        last_seen_ts=last_seen_ts,
        events_since_seen=events_since_seen,
        recent=recent,
        type_counts=type_counts,
        behaviour=behaviour,
        ad_impressions=ad_impressions,
        ad_clicks=ad_clicks,
        returns=returns,
        session_events=session_events,
        session_engaged_s=session_engaged_s,
        device=device if device in DEVICES else "other",
        hour_of_day=tm.tm_hour,
        day_of_week=tm.tm_wday,
    )


def population_features(state: FeatureState | None, now: float) -> PopulationFeatures:
    """Category popularity at ``now`` (empty for a missing or empty state)."""
    if not state:
        return PopulationFeatures.empty(now)
    sums = state.sums
    last = state.maxima.get("last", 0.0)
    at_last: list[dict[str, float]] = [{} for _ in POPULATION_HALF_LIVES]
    live = _live_epochs(last, POPULATION_HALF_LIVES, at_last)
    counts: dict[str, float] = {}
    for name, value in sums.items():
        tag = name[:2]
        if tag == "c:":
            counts[name[2:]] = value
        elif tag == "d:":
            cut = name.find(":", name.find(":", 2) + 1) + 1  # after "d:<label>:<epoch>:"
            entry = live.get(name[:cut])
            if entry is not None:  # an epoch still read
                table, factor = entry
                category = name[cut:]
                table[category] = table.get(category, 0.0) + value * factor
    return PopulationFeatures(
        now=now,
        events=sums.get("n", 0.0),
        total=sum(counts.values()),
        counts=counts,
        share_1d=_shares(at_last[0]),
        share_7d=_shares(at_last[1]),
        ranking=tuple(sorted(counts, key=lambda c: (-counts[c], c))),
    )
