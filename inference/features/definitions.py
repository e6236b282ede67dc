"""The constants every feature computation shares (online store, training-set builder, models).

Bump ``FEATURE_SCHEMA_VERSION`` whenever the meaning of a state field, the read-out or the pair
feature list changes: stored models of another version refuse to load.
"""

from __future__ import annotations

FEATURE_SCHEMA_VERSION = 4

# (label, seconds): the decayed category counts kept per user
HALF_LIVES: tuple[tuple[str, float], ...] = (
    ("1h", 3_600.0),
    ("1d", 86_400.0),
    ("3d", 3 * 86_400.0),
    ("7d", 7 * 86_400.0),
    ("30d", 30 * 86_400.0),
)
# the decayed counts kept for the population (popularity now, and the trend 1d vs 7d)
POPULATION_HALF_LIVES: tuple[tuple[str, float], ...] = (("1d", 86_400.0), ("7d", 7 * 86_400.0))
# an epoch lasts this many half-lives: the additive terms 2^((t - E)/h) stay below 2^128
EPOCH_HALF_LIVES = 128
# the recent sequence kept per user (item, categories, time), newest last
SEQUENCE_LENGTH = 50
# events that express interest in their categories (counts, decay, recency, the sequence, labels);
# page_ping only adds engaged time, ad_impression only the per-category impression count
INTEREST_TYPES = frozenset({"page_view", "click", "ad_click", "conversion"})
# interest events counted per category by type too (behaviour: a favourite, a cart, a purchase say more
# than a view); page views are the plain counts ``c:``
BEHAVIOUR_TYPES = ("click", "ad_click", "conversion")
# the event types of the recent sequence, as the models index them (0 = padding)
SEQUENCE_TYPES = ("page_view", "click", "ad_click", "conversion")
AD_IMPRESSION = "ad_impression"
AD_CLICK = "ad_click"
# a session is over after this long without an event (its counters then read as zero)
SESSION_IDLE_S = 30 * 60.0
# sessions whose counters a user's state keeps (the most recent ones); older ones are pruned
SESSIONS_KEPT = 2
DEVICES = ("desktop", "mobile", "tablet", "other")
# (label, seconds): the time buckets whose distinct occurrences are counted per category over the whole
# history (in how many hours, on how many days the shopper came to it: an interest that returns, not one
# burst); kept as bit masks of RETURN_WORD_BITS buckets per field (see ``ops``)
RETURN_BUCKETS: tuple[tuple[str, float], ...] = (("h", 3_600.0), ("d", 86_400.0))
# buckets per mask: Redis's Lua ``bit`` library works on signed 32-bit integers
RETURN_WORD_BITS = 30
