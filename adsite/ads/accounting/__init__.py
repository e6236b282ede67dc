"""The ad ledger: money and frequency counters, exact under concurrency; one interface, two backends.

Not to be confused with tracking's event ledger (``manage.py ledger``, ``tracking.api.ledger_get``: counts
of received, stored and dropped events that reconcile): this package is the ads side's accounting of
budgets, spend, frequency caps, billed clicks and the report counters invoices come from.

- ``contract``: the ``Ledger`` protocol, its outcomes, ``Charge`` / ``Snapshot`` / ``CreativeStats`` and
  ``LedgerUnavailable`` (every promise a backend keeps).
- ``memory``: ``MemoryLedger`` (embedded mode), in-process, written through to SQLite.
- ``redis_ledger``: ``RedisLedger`` (services and scale-out modes), Lua scripts on one hash slot each;
  ``redis_scripts``: those scripts' Lua source.

Callers import from here: ``ledger()`` is this process's ledger (the platform's).
"""

from __future__ import annotations

from collections.abc import Callable

from adsite.ads.accounting.contract import (
    BILLED,
    CAPPED_DAY,
    CAPPED_HOUR,
    CLICKS_BILLED,
    DAILY_BUDGET,
    FREE,
    FREQ_TTL_S,
    IMPRESSIONS_BILLED,
    LATE,
    NO_REPEAT,
    OK,
    OUT_OF_BUDGET,
    REPEAT_BUCKETS,
    REPLAYED,
    SERVED,
    SPEND,
    VIEWABLE,
    Charge,
    ClickChargeUnknown,
    ClickRowOwed,
    CreativeStats,
    Ledger,
    LedgerUnavailable,
    ReservationLost,
    Snapshot,
    day_key,
    hour_key,
    repeat_bucket,
    report_ttl_s,
)
from adsite.ads.accounting.memory import MemoryLedger
from adsite.ads.accounting.redis_ledger import RedisLedger
from adsite.ads.conf import ads_setting

__all__ = [
    "BILLED",
    "CAPPED_DAY",
    "CAPPED_HOUR",
    "CLICKS_BILLED",
    "DAILY_BUDGET",
    "FREE",
    "FREQ_TTL_S",
    "IMPRESSIONS_BILLED",
    "LATE",
    "NO_REPEAT",
    "OK",
    "OUT_OF_BUDGET",
    "REPEAT_BUCKETS",
    "REPLAYED",
    "SERVED",
    "SPEND",
    "VIEWABLE",
    "Charge",
    "ClickChargeUnknown",
    "ClickRowOwed",
    "CreativeStats",
    "Ledger",
    "LedgerUnavailable",
    "MemoryLedger",
    "RedisLedger",
    "ReservationLost",
    "Snapshot",
    "day_key",
    "hour_key",
    "ledger",
    "ledger_build",
    "repeat_bucket",
    "report_ttl_s",
]


def ledger_build(*, on_lost: Callable[[ReservationLost], None] | None = None) -> Ledger:
    """The ledger ``ADS["LEDGER"]`` names. ``on_lost``: where a Redis ledger hands each reservation whose
    answer was lost, besides voiding it itself (the platform keeps them in the database)."""
    if ads_setting("LEDGER") == "redis":
        url = ads_setting("REDIS_URL")
        if not url:
            raise RuntimeError('ADS["LEDGER"] is "redis" but no REDIS_URL is configured')
        return RedisLedger(
            url, prefix=str(ads_setting("REDIS_PREFIX")), shared_max_age_s=float(ads_setting("SNAPSHOT_MAX_AGE_S")),
            on_lost=on_lost,
        )
    path = ads_setting("LEDGER_PATH")
    return MemoryLedger(None if path in (None, "", ":memory:") else path)


def ledger() -> Ledger:
    """This process's ledger (the platform's: built on first use from ``ADS["LEDGER"]``)."""
    from adsite.platform import platform

    return platform().ledger
