"""Ads settings: defaults here, overrides from ``settings.ADS`` (which reads the environment).

``ads_setting("BUDGET_MS")`` is the one accessor; nothing in ``adsite.ads`` reads ``os.environ``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from adsite.platform import platform

DEFAULTS: dict[str, Any] = {
    # whole-decision budget (prediction included), milliseconds
    "BUDGET_MS": 10.0,
    # at most this much of the decision budget goes to the interest prediction
    "PREDICT_BUDGET_MS": 5.0,
    # interest categories asked of inference per decision
    "INTEREST_TOP": 40,
    # "memory" (in-process, persisted to SQLite) or "redis" (services mode)
    "LEDGER": "memory",
    "LEDGER_PATH": "var/ads_ledger.sqlite3",
    "REDIS_URL": None,
    "REDIS_PREFIX": "ads:",
    # seconds an in-process catalog (campaigns, creatives, placements) is reused before it is rebuilt
    "CATALOG_SECONDS": 3.0,
    # seconds a process's decisions share the campaigns' spend and the creatives' statistics they plan from
    # (the Redis ledger's snapshot; the visitor's caps are read every time, and every reservation checks
    # budget and caps atomically whatever the snapshot said); 0: every decision reads them
    "SNAPSHOT_MAX_AGE_S": 1.0,
    # Beta prior of a creative's click-through rate (a new creative starts here and gets explored)
    "CTR_PRIOR_CLICKS": 1.0,
    "CTR_PRIOR_IMPRESSIONS": 50.0,
    # a creative's quality (clicks over the clicks its audience's interest lift predicts): Gamma prior of
    # this shape (in clicks) around the pooled rate, so a new creative is explored but one or two
    # clicks do not crown it; pooled over the creative's campaign ("campaign") or every creative ("all")
    "QUALITY_PRIOR_SHAPE": 4.0,
    "QUALITY_POOL": "campaign",
    # how strongly a visitor's predicted interest in a campaign's categories moves its click probability
    "INTEREST_LIFT_MAX": 8.0,
    # lift = (visitor's score + s) / (population's score + s), in the interest scores' own units
    "INTEREST_SMOOTHING": 0.05,
    # lift ** power: how sharply the click estimate follows the interest ratio (1 = proportional)
    "INTEREST_LIFT_POWER": 1.0,
    # wear-out of repeated ads: a visitor's 2nd, 3rd, later impression of a campaign today is expected to be
    # clicked at the rate the ledger's repeat statistics show relative to a 1st (never above it); learned from
    # the site's own impressions and clicks (``scoring.wear_out_factors``) with a prior of no wear-out worth
    # ``WEAR_OUT_PRIOR_CLICKS`` clicks per bucket; False: every impression is expected as a first one
    "WEAR_OUT": True,
    "WEAR_OUT_PRIOR_CLICKS": 20.0,
    # pacing: a campaign whose spend today is ahead of (share of the day elapsed + slack) x daily
    # budget sits out; False switches pacing off (the simulation measures targeting, not pacing)
    "PACING": True,
    "PACING_SLACK": 0.05,
    # click tokens: how long a click link stays billable (seconds)
    "CLICK_MAX_AGE_S": 24 * 3600,
    # a click whose charge's answer was lost (``unsettled``) is settled from the ledger's record this long
    # after it (seconds): past any request timeout, so the lost request has reached Redis or never will
    "CLICK_SETTLE_AFTER_S": 10.0,
    # edge mode (adsite.ads.edge): how long an offer made from a page's context may be chosen (seconds),
    # and how many times a creative must have been chosen on devices before its edge statistics are
    # reported (fewer: "fewer than N", so that no report describes a handful of visitors)
    "EDGE_OFFER_MAX_AGE_S": 600,
    "EDGE_MIN_AUDIENCE": 50,
    # hourly report counters (served, viewable, billed, spend, invalid traffic by reason) are kept this long
    "REPORT_RETENTION_DAYS": 400,
    # AdClick rows (every click request, billed or refused, with its reason) are deleted after this long
    "CLICK_RETENTION_DAYS": 395,
    # share of decisions whose explanation is kept, and how many are kept at most
    "EXPLAIN_SAMPLE": 0.01,
    "EXPLAIN_KEEP": 1000,
    # the currency every bid, budget, spend and revenue figure is in (ISO 4217 code, shown beside amounts)
    "CURRENCY": "USD",
}


def ads_setting(name: str) -> Any:
    """The current value of an ads setting: the platform's (the simulation's run) over ``settings.ADS``
    over the defaults, re-read each call (so ``override_settings`` and an installed platform both work)."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown ads setting {name!r}")
    installed = platform().ads_settings
    if name in installed:
        return installed[name]
    configured = getattr(settings, "ADS", {}) or {}
    value = configured.get(name, DEFAULTS[name])
    if name == "REDIS_URL" and not value:
        return getattr(settings, "REDIS_URL", None)
    return value
