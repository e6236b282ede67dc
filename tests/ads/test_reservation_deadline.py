"""A reservation Redis runs after its caller gave up changes nothing.

Redis stopped (SIGSTOP, as a hung server or a stalled network path) while a decision's reservation waits
in its socket: the client times out after 0.25 s and the page gets house ads. When Redis runs again it
reads the request. Before reservations carried a deadline, it then charged the CPM price, held the
visitor's caps and counted a served impression for an ad nobody saw (the fault battery's Redis-stall
scenario found served impressions above the ads shown). A reservation that still runs after the client gave
up (this host's clock ahead of Redis's, or an answer that leaves Redis late) is voided by the process's next
reservation: its receipt says what it did, and that is given back. The ledger is a ``RedisLedger`` on a
redis-server of the test's own.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
import redis

from adsite.ads.accounting import LATE, OK, Charge, LedgerUnavailable, RedisLedger, ReservationLost
from adsite.ads.decisions import PlacementRequest, ads_select
from adsite.ads.eligibility import LEDGER_UNAVAILABLE

PRICE = 2_000  # a CPM impression's price, micros
CHARGE = Charge(campaign_id=7, creative_id=70, impression_price_micros=PRICE, daily_budget_micros=10**9,
                total_budget_micros=10**9, cap_per_hour=5, cap_per_day=10)


def _counted(ledger: RedisLedger, now: float) -> dict[str, int]:
    """What the ledger holds for campaign 7: spend, the visitor's caps used, served impressions, the
    creative's impressions."""
    snapshot = ledger.snapshot(campaign_ids=[7], creative_ids=[70], user_id="visitor", now=now)
    return {
        "spend": ledger.spend(campaign_id=7, now=now)[0],
        "caps_hour": snapshot.user_hour[7],
        "served": ledger.report_read(since=now, now=now).get("7:served", 0),
        "impressions": snapshot.impressions[70],
    }


def _stalled_reservation(server: Any, ledger: RedisLedger, now: float, charges: list[Charge] | None = None) -> None:
    """One reservation sent to a stopped Redis: the client gives up, Redis wakes a second later and reads it."""
    from inference.redis_clients import guard_reset

    server.pause()
    threading.Timer(1.0, server.resume).start()
    started = time.monotonic()
    with pytest.raises(LedgerUnavailable):
        ledger.impressions_reserve(charges=charges or [CHARGE], user_id="visitor", now=now)
    assert time.monotonic() - started < 0.9  # the client gave up before Redis woke
    time.sleep(1.5)  # Redis runs again and has read what was sent
    guard_reset()  # this process stops treating it as down (its cooldown)


@pytest.mark.parametrize("deadline", [True, False], ids=["with-deadline", "without-deadline"])
def test_a_reservation_that_reaches_redis_after_the_client_gave_up_changes_nothing(
    private_redis_server: Any, deadline: bool
) -> None:
    ledger = RedisLedger(private_redis_server.url, prefix=f"test-ads-{uuid.uuid4().hex}:")
    now = time.time()
    assert ledger.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]  # shown: one
    if not deadline:
        # the ledger as it was before deadlines: shows that the stall below does deliver the request late
        ledger._reply_timeout_s = None
    _stalled_reservation(private_redis_server, ledger, now)
    one = {"spend": PRICE, "caps_hour": 1, "served": 1, "impressions": 1}
    if deadline:
        assert _counted(ledger, now) == one  # the impression that ran, and nothing for the one that did not
    else:
        assert _counted(ledger, now) == {name: 2 * value for name, value in one.items()}
    # Redis takes new reservations as before, and the next one voids the lost one first: in both cases the
    # ledger then holds the two impressions shown, and nothing of the one that was not
    assert ledger.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]
    assert _counted(ledger, now) == {name: 2 * value for name, value in one.items()}


def test_a_reservation_that_still_ran_after_the_client_gave_up_is_given_back_by_the_next_one(
    private_redis_server: Any, caplog: Any
) -> None:
    """This host's clock 5 s ahead of Redis's: the deadline does not stop a stalled reservation, which runs
    when Redis wakes, though its decision served house ads. The receipt it left says what it did, and the
    process's next reservation gives that back (money, caps, served count, statistics) before its own."""
    ledger = RedisLedger(
        private_redis_server.url, prefix=f"test-ads-{uuid.uuid4().hex}:", wall_clock=lambda: time.time() + 5
    )
    now = time.time()
    # the process has reserved before (its connection open, the campaign in the hour's report index): another
    # visitor's free impression of another creative, served count 1
    warm = dataclasses.replace(CHARGE, creative_id=71, impression_price_micros=0)
    assert ledger.impressions_reserve(charges=[warm], user_id="other", now=now) == [OK]
    charges = [CHARGE, dataclasses.replace(CHARGE, repeat=0, expected_micros=30_000, extra_exposure_micros=500_000)]
    _stalled_reservation(private_redis_server, ledger, now, charges)
    ran = ledger.snapshot(campaign_ids=[7], creative_ids=[70], user_id="visitor", now=now)
    assert (ran.user_hour[7], ran.impressions[70], ran.extra_exposure[70], ran.repeat_expected[0]) == (2, 2, 500_000, 30_000)
    assert ledger.spend(campaign_id=7, now=now) == (2 * PRICE, 2 * PRICE)  # it ran, for ads nobody saw
    with caplog.at_level(logging.WARNING, logger="adsite.ads.accounting.redis_ledger"):
        assert ledger.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]
    assert "ads.reservation_voided 2 of 2 impressions" in caplog.text
    assert _counted(ledger, now) == {"spend": PRICE, "caps_hour": 1, "served": 2, "impressions": 1}
    after = ledger.snapshot(campaign_ids=[7], creative_ids=[70], user_id="visitor", now=now)
    assert (after.user_day[7], after.extra_exposure[70], after.repeat_expected[0]) == (1, 0, 0)
    # voided once: later reservations find nothing more to give back
    assert ledger.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]
    assert _counted(ledger, now) == {"spend": 2 * PRICE, "caps_hour": 2, "served": 3, "impressions": 2}


def test_a_reservation_arriving_after_its_void_changes_nothing(private_redis: str) -> None:
    """The other order: the void reaches Redis first (the lost request still in a socket), and leaves its
    receipt void, so the reservation changes nothing when it arrives."""
    ledger = RedisLedger(private_redis, prefix=f"test-ads-{uuid.uuid4().hex}:")
    now = time.time()
    lost = ReservationLost(uuid.uuid4().hex, (CHARGE,), "visitor", now, time.time())
    assert ledger._void(lost) == 0  # nothing had run
    assert ledger._reserve_at_once([CHARGE], "visitor", now, lost.rid) == [LATE]  # the late arrival
    assert _counted(ledger, now) == {"spend": 0, "caps_hour": 0, "served": 0, "impressions": 0}


def test_a_reservation_past_its_deadline_on_arrival_is_answered_late_and_changes_nothing(private_redis: str) -> None:
    """This host's clock 5 s behind Redis's: every reservation reaches Redis past its deadline (by this
    host's clock), so Redis refuses it while the client still waits."""
    ledger = RedisLedger(private_redis, prefix=f"test-ads-{uuid.uuid4().hex}:", wall_clock=lambda: time.time() - 5)
    now = time.time()
    assert ledger.impressions_reserve(charges=[CHARGE, CHARGE], user_id="visitor", now=now) == [LATE, LATE]
    assert _counted(ledger, now) == {"spend": 0, "caps_hour": 0, "served": 0, "impressions": 0}


def test_a_decision_whose_reservations_come_back_late_serves_house_ads_and_says_why(
    private_redis: str, make_campaign: Any, interests: Any, fresh_platform: Any
) -> None:
    late = RedisLedger(private_redis, prefix=f"test-ads-{uuid.uuid4().hex}:", wall_clock=lambda: time.time() - 5)
    fresh_platform.ledger_backend = late
    campaigns = [make_campaign(pricing="cpm", bid=Decimal("2.00")) for _ in range(3)]
    decision = ads_select(user_id="reader", placements=[PlacementRequest("sidebar"), PlacementRequest("footer")])
    assert [c.creative is None for c in decision.choices] == [True, True]
    assert decision.filtered == {LEDGER_UNAVAILABLE: 2}  # the two reserved, then no more tries
    assert all(late.spend(campaign_id=c.id, now=time.time()) == (0, 0) for c in campaigns)


def test_a_void_redis_refuses_is_dropped_and_the_next_lost_reservation_is_still_voided(
    private_redis_server: Any, caplog: Any
) -> None:
    """A void that fails on Redis's side (a receipt key of the wrong type: not an outage) would fail every
    time: it is logged as an error and dropped, and the lost reservations behind it are voided."""
    prefix = f"test-ads-{uuid.uuid4().hex}:"
    ledger = RedisLedger(private_redis_server.url, prefix=prefix, wall_clock=lambda: time.time() + 5)
    now = time.time()
    assert ledger.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]
    broken = ReservationLost(uuid.uuid4().hex, (CHARGE,), "visitor", now, time.time())
    redis.Redis.from_url(private_redis_server.url).hset(f"{prefix}res:{broken.rid}", "x", "1")  # WRONGTYPE for GET
    _stalled_reservation(private_redis_server, ledger, now)  # runs when Redis wakes, its answer lost
    assert _counted(ledger, now)["spend"] == 2 * PRICE
    ledger._lost.appendleft(broken)  # lost before it, first in line
    with caplog.at_level(logging.WARNING, logger="adsite.ads.accounting.redis_ledger"):
        assert ledger.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]
    assert "ads.reservation_void_refused" in caplog.text
    assert "ads.reservation_voided 1 of 1 impressions" in caplog.text
    assert _counted(ledger, now) == {"spend": 2 * PRICE, "caps_hour": 2, "served": 2, "impressions": 2}
    assert not ledger._lost
