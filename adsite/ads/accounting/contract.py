"""The ad ledger's contract: what every backend promises and the types that cross it.

Money and frequency counters, exact under concurrency: one interface, two backends.

Promises:
- ``impression_reserve`` is one atomic check-and-count: the campaign's total and daily spend are
  below budget, the visitor is under both frequency caps, then (CPM) the price is spent, the
  visitor's counters and the creative's served impressions go up. Because the check is "spent so far
  < budget" and the charge follows atomically, a campaign overspends by at most one price.
- ``click_charge`` is one atomic step too: a token id is billed at most once (a replay is refused),
  and a CPC click is billed only while the budget lasts; every non-replayed click counts for the
  creative's statistics. The ledger remembers which click (``click_id``, the ``AdClick`` row) a token's
  charge belongs to: asked again for the same token, it answers the first charge's outcome for that
  click and ``REPLAYED`` for any other, and never charges twice.
- A reservation is only made while its caller still waits for the answer: ``RedisLedger`` sends each one
  with a deadline (this host's clock plus the client's reply timeout) that Redis checks against its own
  clock before changing anything. One that reaches Redis later (Redis was stopped or unreachable while
  the request waited in its socket, and the caller has served house ads since) changes nothing: no
  money, caps or served count for an ad that never ran. A caller that does see that answer gets
  ``LATE`` (this host's clock is behind Redis's by more than the timeout, or the reply was slow). A
  reservation whose answer was lost after it ran (the reply slow, or Redis died before sending it) is
  voided: ``RedisLedger`` gives back what its receipt says it did before the process's next reservation.
- A charge whose answer was lost (``ClickChargeUnknown``: the request reached the ledger, the reply did
  not come back) may or may not have happened; ``click_charge_settle`` later says which, for that click,
  and voids the token if it had not been charged, so a late arrival of the lost request charges nothing.
- ``RedisLedger`` (services and scale-out modes): Lua scripts, so any number of processes and hosts share
  exact counters, on one Redis or a Redis Cluster alike: every script touches the keys of ONE hash slot.
- Repeat statistics (what the wear-out of repeated ads is learned from, ``scoring.wear_out_factors``): with
  each counted impression of a visitor, the click model's expected clicks for it (``Charge.expected_micros``)
  under its repeat bucket (the visitor's earlier impressions of the campaign today, ``repeat_bucket``), and
  with each counted click, one click under the bucket its token carries; kept per creative, beside its
  statistics, and summed over the creatives a snapshot names.
- Report counters (what ``ads_report`` invoices from): per UTC hour and campaign, impressions served,
  viewable and billed, clicks billed, spend, and invalid impressions and clicks by reason (campaign 0:
  invalid traffic that names no campaign), kept ``REPORT_RETENTION_DAYS``. Served, billed and spend move
  in the same atomic step as the money; the field set is bounded by campaigns x metrics per hour.
- When Redis cannot be reached, every ``RedisLedger`` call raises ``LedgerUnavailable`` (never a
  redis-py error): callers degrade (house ads, clicks redirected but not billed), never crash.
- Click rows owed: a click the ledger billed whose ``AdClick`` row the database did not take (it went away
  between the row's insert and its update) is kept by the ledger, as durably as the money, until
  ``click_rows_settle`` (``services.billing``) writes it; so the click rows catch up with the spend.
- ``MemoryLedger`` (embedded mode): dicts under one lock, every change written through to a small
  SQLite file in the same critical section, so spend, caps and statistics survive a restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from adsite.ads.conf import ads_setting

FREQ_TTL_S = 2 * 86400

OK = "ok"
OUT_OF_BUDGET = "out_of_budget"
DAILY_BUDGET = "daily_budget"
CAPPED_HOUR = "capped_hour"
CAPPED_DAY = "capped_day"
LATE = "late"  # the reservation reached the ledger after its caller's deadline: nothing was changed
BILLED = "billed"
FREE = "free"
REPLAYED = "replayed"


# repeat buckets: an impression is the visitor's 1st, 2nd, 3rd or later of the campaign today
REPEAT_BUCKETS = 4
NO_REPEAT = -1  # not known (no visitor id, or a token issued before the bucket was carried)


def repeat_bucket(earlier: int) -> int:
    """The repeat bucket of an impression after ``earlier`` impressions of the same campaign today."""
    return min(max(earlier, 0), REPEAT_BUCKETS - 1)


def day_key(now: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


def hour_key(now: float) -> str:
    return str(int(now // 3600))


# report metrics (``<campaign>:<metric>`` fields); invalid ones are ``ivi.<reason>`` / ``ivc.<reason>``
SERVED = "served"
VIEWABLE = "viewable"
IMPRESSIONS_BILLED = "imp_billed"
CLICKS_BILLED = "clk_billed"
SPEND = "spend"


def report_ttl_s() -> int:
    return int(float(ads_setting("REPORT_RETENTION_DAYS")) * 86400)


@dataclass(frozen=True, slots=True)
class Charge:
    """What an impression of one campaign's creative may cost and which limits it must respect."""

    campaign_id: int
    creative_id: int
    impression_price_micros: int  # CPM: bid/1000; CPC: 0 (paid on click)
    daily_budget_micros: int
    total_budget_micros: int
    cap_per_hour: int = 0
    cap_per_day: int = 0
    # the click model's weight of this impression (the visitor's interest lift) minus 1, in millionths:
    # a creative's exposure = impressions + the summed extra; its quality is learned as clicks /
    # exposure (``scoring.quality_posteriors``). Counted with the impression, no money involved
    extra_exposure_micros: int = 0
    # the repeat bucket of this impression (``repeat_bucket``; NO_REPEAT: not counted) and the click model's
    # expected clicks for it in millionths (creative quality x interest lift, before any wear-out)
    repeat: int = NO_REPEAT
    expected_micros: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Counters read in one go for one decision (a hint: the reservation re-checks atomically)."""

    spend_total: dict[int, int]
    spend_today: dict[int, int]
    user_hour: dict[int, int]
    user_day: dict[int, int]
    impressions: dict[int, int]
    clicks: dict[int, int]
    extra_exposure: dict[int, int] = field(default_factory=dict)  # creative -> summed extra_exposure_micros
    # repeat bucket -> the named creatives' summed expected clicks (micros) and counted clicks in that bucket
    repeat_expected: dict[int, int] = field(default_factory=dict)
    repeat_clicks: dict[int, int] = field(default_factory=dict)
    # which read of the creatives' statistics (impressions, clicks, extra_exposure) this snapshot carries:
    # two snapshots of one ledger with the same generation carry the same statistics for the creatives both
    # name (a process shares them between its decisions); None: read for this snapshot alone
    stats_generation: int | None = None

    @classmethod
    def empty(cls) -> Snapshot:
        """No counters known (the ledger unreachable)."""
        return cls({}, {}, {}, {}, {}, {})


@dataclass(frozen=True, slots=True)
class ClickRowOwed:
    """The outcome an ``AdClick`` row must be given (the ledger has already charged for it)."""

    click_id: int
    outcome: str
    price_micros: int


@dataclass(frozen=True, slots=True)
class ReservationLost:
    """A reservation whose answer did not come back: it may have run (``RedisLedger``'s module docstring).
    ``rid`` names its receipts; ``now`` is the decision's time (its day and hour counters); ``lost_at`` this
    host's clock (``time.time``) when the answer was lost."""

    rid: str
    charges: tuple[Charge, ...]
    user_id: str
    now: float
    lost_at: float


@dataclass(frozen=True, slots=True)
class CreativeStats:
    impressions: int
    clicks: int
    viewable: int


class Ledger(Protocol):
    def snapshot(
        self, *, campaign_ids: Sequence[int], creative_ids: Sequence[int], user_id: str, now: float
    ) -> Snapshot: ...

    def impression_reserve(self, *, charge: Charge, user_id: str, now: float) -> str: ...

    def impressions_reserve(self, *, charges: Sequence[Charge], user_id: str, now: float) -> list[str]:
        """``impression_reserve`` for each charge in order (each one atomic, as if called one by one)."""
        ...

    def click_charge(
        self,
        *,
        token_id: str,
        campaign_id: int,
        creative_id: int,
        price_micros: int,
        daily_budget_micros: int,
        total_budget_micros: int,
        now: float,
        token_ttl_s: int,
        click_id: int = 0,
        repeat: int = NO_REPEAT,
    ) -> str:
        """``BILLED``, ``FREE`` or ``REPLAYED`` for the click ``click_id`` (0: a click with no row); a click not
        replayed counts for the creative's statistics, and under ``repeat`` (its impression's repeat bucket)
        for the repeat statistics."""
        ...

    def click_charge_settle(self, *, token_id: str, campaign_id: int, click_id: int, token_ttl_s: int) -> tuple[str, int]:
        """What a charge whose answer was lost did for ``click_id``: ``(BILLED, price)`` when it charged for
        this click, ``(FREE, 0)`` when it did not (the token is then voided: nothing charges it later),
        ``(REPLAYED, 0)`` when another click of the same token holds the charge."""
        ...

    def viewable_add(self, *, creative_ids: Iterable[int]) -> None:
        """Add viewable impressions to creatives' statistics (no check: tests and history only)."""
        ...

    def viewable_count(self, *, serve_id: str, creative_id: int, campaign_id: int, ttl_s: int, now: float) -> bool:
        """Count one served impression as viewable, once: False (nothing counted) when ``serve_id`` was
        counted before. One atomic step: the creative's statistics and the campaign's report."""
        ...

    def report_add(self, *, counts: dict[str, int], now: float) -> None:
        """Add ``{"<campaign>:<metric>": n}`` to the hour of ``now`` (invalid traffic, viewable)."""
        ...

    def report_read(self, *, since: float | None, now: float) -> dict[str, int]:
        """The report counters summed over the hours from ``since``'s (all kept hours when None) to now."""
        ...

    def creative_stats(self, *, creative_id: int) -> CreativeStats: ...

    def visitor_forget(self, *, user_id: str) -> None:
        """Delete one visitor's frequency counters (the privacy operation)."""
        ...

    def spend(self, *, campaign_id: int, now: float) -> tuple[int, int]: ...

    def click_row_owe(self, *, owed: ClickRowOwed) -> None:
        """Keep ``owed`` until it is settled (a later one for the same click replaces it)."""
        ...

    def click_rows_owed(self, *, limit: int) -> list[ClickRowOwed]:
        """Up to ``limit`` rows owed, in no particular order."""
        ...

    def click_rows_settled(self, *, click_ids: Sequence[int]) -> None:
        """Forget these owed rows: the database has them now."""
        ...

    def reservation_void(self, *, lost: ReservationLost) -> int:
        """Give back what ``lost`` did, if it ran, and make sure it changes nothing should it still arrive;
        the impressions given back (0: it had not run, was voided before, or is too old to void: logged).
        Safe to call more than once. Raises ``LedgerUnavailable`` while the store does not answer."""
        ...

    def clear(self) -> None: ...


class LedgerUnavailable(Exception):
    """The ledger's store could not be reached; the failed call may not have counted anything."""


class ClickChargeUnknown(LedgerUnavailable):
    """A click's charge reached the ledger but its answer did not come back: it may have been charged.
    ``click_charge_settle`` says later whether it was (``services.billing.click_rows_settle``)."""

