"""Per (user, candidate category) tabular features, and the candidate set.

The models score pairs, so their size and latency do not grow with the number of categories: the
candidates are the user's own categories (most frequent first) plus the most popular ones.
``pair_features(user, population, candidates)`` is the one function both training and serving use
to build the rows; ``PAIR_FEATURE_NAMES`` names its columns in order.
"""

from __future__ import annotations

import math
from collections.abc import Container, Sequence

import numpy as np

from inference.features.definitions import HALF_LIVES, SEQUENCE_LENGTH
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
)


def candidate_categories(
    user: UserFeatures,
    popular: Sequence[str],
    *,
    known: Container[str] | None = None,
    limit: int = 100,
) -> list[str]:
    """The user's own categories (most frequent first, at most ``limit - len(popular)``) then the
    ``popular`` ones, restricted to ``known`` when given: at most ``limit``, without repeats."""
    counts = user.counts
    own = sorted(counts, key=lambda c: (-counts[c], c))[: max(0, limit - len(popular))]
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
    rows[:, -1] = [population.trend_1d(c) for c in candidates]
    rows[:, _LOG_COLUMNS] = np.log1p(rows[:, _LOG_COLUMNS])
    return rows.astype(np.float32)


_LOG_COLUMNS = [
    i
    for i, name in enumerate(PAIR_FEATURE_NAMES)
    if name.startswith("log_") and name not in {"log_session_events", "log_session_engaged_s"}
]
