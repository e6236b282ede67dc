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
    """The tabular features of each (user, candidate) pair at ``user.now``: [len(candidates), F]."""
    rows = np.zeros((len(candidates), len(PAIR_FEATURE_NAMES)), dtype=np.float32)
    if not candidates:
        return rows
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
    hour = user.hour_of_day / 24.0
    context = [
        math.log1p(user.session_events),
        math.log1p(user.session_engaged_s),
        math.sin(_TWO_PI * hour),
        math.cos(_TWO_PI * hour),
        1.0 if user.day_of_week >= 5 else 0.0,
        1.0 if user.device == "mobile" else 0.0,
        1.0 if user.device == "tablet" else 0.0,
    ]
    day_share = user.decayed_share[1]
    for row, category in enumerate(candidates):
        count = counts.get(category, 0.0)
        values = [math.log1p(count), count / count_total if count_total else 0.0]
        values += [math.log1p(table.get(category, 0.0)) for table in user.decayed]
        values += [table.get(category, 0.0) for table in user.decayed_share]
        values += [recent20.get(category, 0), recent50.get(category, 0)]
        seen_ts = user.last_seen_ts.get(category)
        since = user.events_since_seen.get(category)
        if since is None:
            since = SEQUENCE_LENGTH + 1 if seen_ts is not None else user.events
        impressions = user.ad_impressions.get(category, 0.0)
        values += [
            math.log1p(max(0.0, now - seen_ts) if seen_ts is not None else NEVER_SEEN_S),
            0.0 if seen_ts is not None else 1.0,
            math.log1p(since),
            math.log1p(user.events),
            frequency_rank.get(category, n_known) / n_known,
            day_share.get(category, 0.0),
            population.share(category),
            population.trend(category),
            0.0 if count else 1.0,
            math.log1p(impressions),
            user.ad_clicks.get(category, 0.0) / impressions if impressions > 0 else 0.0,
            *context,
            population.trend_1d(category),
        ]
        rows[row] = values
    return rows
