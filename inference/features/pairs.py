"""Per (user, candidate category) tabular features, and the candidate set.

The models score pairs, so their size and latency do not grow with the number of categories: the
candidates are the user's own categories (recent, then frequent) plus the most popular ones.
``pair_features(user, population, candidates)`` is the one function both training and serving use
to build the rows; ``PAIR_FEATURE_NAMES`` names its columns in order.
"""

from __future__ import annotations

import math
from collections.abc import Container, Sequence

import numpy as np

from inference.features.definitions import (
    BEHAVIOUR_TYPES,
    HALF_LIVES,
    RETURN_BUCKETS,
    SEQUENCE_LENGTH,
    SESSION_IDLE_S,
)
from inference.features.readout import PopulationFeatures, UserFeatures

__all__ = ["PAIR_FEATURE_NAMES", "NEVER_SEEN_S", "pair_features", "candidate_categories"]

NEVER_SEEN_S = 10 * 365 * 86_400.0
_TWO_PI = 2.0 * math.pi

PAIR_FEATURE_NAMES: tuple[str, ...] = (
    "log_count",
    "count_share",
    *(f"log_decayed_{int(h)}s" for _, h in HALF_LIVES),
    *(f"decayed_share_{int(h)}s" for _, h in HALF_LIVES),
    "recent20_count",
    "recent50_count",
    "log_seconds_since_seen",
    "never_seen",
    # interest events since last seen, within the recent sequence (SEQUENCE_LENGTH + 1 beyond it)
    "log_events_since_seen",
    "log_user_events",
    "frequency_rank",
    # the "decayed" baseline's view: 1-day half-life share, measured from the user's last event
    "last_event_decayed_share",
    "population_share",
    "population_trend",
    "candidate_is_popular_only",
    # ads shown / clicked for this category
    "log_ad_impressions",
    "ad_click_rate",
    # user-level context (the same for every candidate of a user)
    "log_session_events",
    "log_session_engaged_s",
    "hour_sin",
    "hour_cos",
    "weekend",
    "device_mobile",
    "device_tablet",
    "population_trend_1d",
    # repeat consumption: favourites / carts and purchases of the category (BEHAVIOUR_TYPES)
    *(f"log_{kind}_count" for kind in BEHAVIOUR_TYPES),
    # seconds from the category's last event to the user's last event (0: in the latest event); unlike
    # log_seconds_since_seen, the same whether the prediction comes seconds or a day after the visit
    "log_seen_before_last_s",
    # within the recent sequence, split into sessions at SESSION_IDLE_S gaps: how many sessions (and
    # which share of them) held the category (an interest that returns, not one burst), its events in
    # the latest session (count and share), distinct days, distinct items, and the most views of one item
    "recent_sessions_with",
    "recent_sessions_share",
    "last_session_count",
    "last_session_share",
    "recent_days_with",
    "log_recent_items",
    "log_recent_max_item_repeats",
    # user-level context: seconds since the user's last interest event, sessions in the recent sequence
    "log_idle_s",
    "log_recent_sessions",
    # over the whole history (RETURN_BUCKETS): in how many distinct hours / days the user came to the
    # category, and which share of the user's own active hours / days that is
    *(name for label, _ in RETURN_BUCKETS for name in (f"log_return_{label}", f"return_{label}_share")),
)


def candidate_categories(
    user: UserFeatures,
    popular: Sequence[str],
    *,
    known: Container[str] | None = None,
    limit: int = 100,
) -> list[str]:
    """The user's own categories (those of the recent sequence, latest first, then the others, most
    frequent first; at most ``limit - len(popular)``) then the ``popular`` ones, restricted to ``known``
    when given: at most ``limit``, without repeats. The recent ones come first so that a shopper with
    hundreds of old categories still has what they looked at today among the candidates."""
    counts = user.counts
    recent = dict.fromkeys(c for item in reversed(user.recent) for c in item.categories)
    frequent = sorted(counts, key=lambda c: (-counts[c], c))
    own = list(dict.fromkeys((*recent, *frequent)))[: max(0, limit - len(popular))]
    seen: dict[str, None] = {}
    for category in (*own, *popular):
        if known is None or category in known:
            seen.setdefault(category, None)
    return list(seen)[:limit]


def pair_features(
    user: UserFeatures, population: PopulationFeatures, candidates: Sequence[str]
) -> np.ndarray:
    """The tabular features of each (user, candidate) pair at ``user.now``: [len(candidates), F].

    Built column by column (one comprehension per feature): this runs on every served request.
    """
    n = len(candidates)
    if not n:
        return np.zeros((0, len(PAIR_FEATURE_NAMES)), dtype=np.float32)
    now = user.now
    counts = user.counts
    count_total = sum(counts.values())
    recent20: dict[str, int] = {}
    recent50: dict[str, int] = {}
    for position, item in enumerate(reversed(user.recent)):
        for category in item.categories:
            recent50[category] = recent50.get(category, 0) + 1
            if position < 20:
                recent20[category] = recent20.get(category, 0) + 1
    frequency_order = sorted(counts, key=lambda c: (-counts[c], c))
    frequency_rank = {c: i for i, c in enumerate(frequency_order)}
    n_known = max(len(frequency_order), 1)
    last_seen = user.last_seen_ts
    since_seen = user.events_since_seen
    impressions_of = user.ad_impressions
    clicks_of = user.ad_clicks
    beyond = SEQUENCE_LENGTH + 1

    count = [counts.get(c, 0.0) for c in candidates]
    seen = [last_seen.get(c) for c in candidates]
    impressions = [impressions_of.get(c, 0.0) for c in candidates]
    columns: list[list[float]] = [
        count,
        [x / count_total for x in count] if count_total else [0.0] * n,
        *([table.get(c, 0.0) for c in candidates] for table in user.decayed),
        *([table.get(c, 0.0) for c in candidates] for table in user.decayed_share),
        [recent20.get(c, 0) for c in candidates],
        [recent50.get(c, 0) for c in candidates],
        [max(0.0, now - t) if t is not None else NEVER_SEEN_S for t in seen],
        [0.0 if t is not None else 1.0 for t in seen],
        [
            since_seen.get(c, beyond if t is not None else user.events)
            for c, t in zip(candidates, seen, strict=True)
        ],
        [user.events] * n,
        [frequency_rank.get(c, n_known) / n_known for c in candidates],
        [user.decayed_share[1].get(c, 0.0) for c in candidates],
        [population.share(c) for c in candidates],
        [population.trend(c) for c in candidates],
        [0.0 if x else 1.0 for x in count],
        impressions,
        [clicks_of.get(c, 0.0) / i if i > 0 else 0.0 for c, i in zip(candidates, impressions, strict=True)],
    ]
    hour = _TWO_PI * user.hour_of_day / 24.0
    context = (
        math.log1p(user.session_events),
        math.log1p(user.session_engaged_s),
        math.sin(hour),
        math.cos(hour),
        1.0 if user.day_of_week >= 5 else 0.0,
        1.0 if user.device == "mobile" else 0.0,
        1.0 if user.device == "tablet" else 0.0,
    )
    rows = np.empty((n, len(PAIR_FEATURE_NAMES)), dtype=np.float64)
    rows[:, : len(columns)] = np.array(columns, dtype=np.float64).T
    rows[:, len(columns) : len(columns) + len(context)] = context
    rows[:, len(columns) + len(context)] = [population.trend_1d(c) for c in candidates]
    rows[:, _REPEAT_START:_RETURN_START] = _repeat_columns(user, candidates)
    for i, table in enumerate(user.returns):
        own = [table.get(c, 0.0) for c in candidates]
        active = table.get("", 0.0)
        rows[:, _RETURN_START + 2 * i] = own
        rows[:, _RETURN_START + 2 * i + 1] = [x / active for x in own] if active else 0.0
    rows[:, _LOG_COLUMNS] = np.log1p(rows[:, _LOG_COLUMNS])
    return rows.astype(np.float32)


_REPEAT_START = PAIR_FEATURE_NAMES.index("population_trend_1d") + 1
_RETURN_START = PAIR_FEATURE_NAMES.index("log_recent_sessions") + 1


def _repeat_columns(user: UserFeatures, candidates: Sequence[str]) -> np.ndarray:
    """The repeat-consumption and session columns (``log_<type>_count`` to ``log_recent_sessions``), before
    log1p."""
    n = len(candidates)
    recent = user.recent
    last = user.last_ts
    sessions_with: dict[str, set[int]] = {}
    days_with: dict[str, set[int]] = {}
    items_of: dict[str, dict[str, int]] = {}
    in_session: dict[str, int] = {}
    session = 0
    previous = None
    boundaries = [0] * len(recent)
    for position, item in enumerate(recent):
        if previous is not None and item.ts - previous > SESSION_IDLE_S:
            session += 1
        previous = item.ts
        boundaries[position] = session
    last_session_events = 0
    for position, item in enumerate(recent):
        current = boundaries[position] == session
        last_session_events += current
        day = int(item.ts // 86_400)
        for category in item.categories:
            sessions_with.setdefault(category, set()).add(boundaries[position])
            days_with.setdefault(category, set()).add(day)
            per_item = items_of.setdefault(category, {})
            per_item[item.item_id] = per_item.get(item.item_id, 0) + 1
            if current:
                in_session[category] = in_session.get(category, 0) + 1
    n_sessions = session + 1 if recent else 0
    last_seen = user.last_seen_ts
    out = np.zeros((n, _RETURN_START - _REPEAT_START), dtype=np.float64)
    for column, kind in enumerate(BEHAVIOUR_TYPES):
        table = user.behaviour.get(kind)
        if table:
            out[:, column] = [table.get(c, 0.0) for c in candidates]
    column = len(BEHAVIOUR_TYPES)
    out[:, column] = [
        max(0.0, last - last_seen[c]) if c in last_seen else NEVER_SEEN_S for c in candidates
    ]
    sessions = [len(sessions_with.get(c, ())) for c in candidates]
    out[:, column + 1] = sessions
    out[:, column + 2] = [x / n_sessions for x in sessions] if n_sessions else 0.0
    counts = [in_session.get(c, 0) for c in candidates]
    out[:, column + 3] = counts
    out[:, column + 4] = [x / last_session_events for x in counts] if last_session_events else 0.0
    out[:, column + 5] = [len(days_with.get(c, ())) for c in candidates]
    out[:, column + 6] = [len(items_of.get(c, ())) for c in candidates]
    out[:, column + 7] = [max(items_of[c].values()) if c in items_of else 0 for c in candidates]
    out[:, column + 8] = max(0.0, user.now - last) if recent else NEVER_SEEN_S
    out[:, column + 9] = n_sessions
    return out


_LOG_COLUMNS = [
    i
    for i, name in enumerate(PAIR_FEATURE_NAMES)
    if (name.startswith("log_") and name not in {"log_session_events", "log_session_engaged_s"})
    or name in {"recent_sessions_with", "last_session_count"}
]
