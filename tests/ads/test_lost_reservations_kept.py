"""A reservation whose answer was lost is kept in the database until voided, so that a process that dies
before voiding it does not leave it counted.

The same stall as ``test_reservation_deadline``: a redis-server of the test's own is stopped while a
reservation waits in its socket, the client gives up (house ads), and, this host's clock 5 s ahead of
Redis's, the reservation still runs when Redis wakes: it charged a CPM price, held the visitor's caps and
counted a served impression for an ad nobody saw. The process that lost it would void it at its next
reservation; here it never reserves again (it died), and the beat's task (``ads.reservations_void``)
gives it back from the row the process kept.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from typing import Any

import pytest

from adsite.ads.accounting import OK, RedisLedger
from adsite.ads.models import LostReservation
from adsite.ads.services.privacy import user_ads_forget
from adsite.ads.services.reservations import reservation_lost_keep
from adsite.ads.tasks import reservations_void
from adsite.platform import Platform, platform_use
from tests.ads.test_reservation_deadline import CHARGE, PRICE, _counted, _stalled_reservation

pytestmark = pytest.mark.django_db

# one impression shown to the visitor (the warm one, another visitor's, is served too)
ONE = {"spend": PRICE, "caps_hour": 1, "served": 2, "impressions": 1}


def _process(url: str, prefix: str, **kwargs: Any) -> RedisLedger:
    """A web process's ledger, its clock 5 s ahead of Redis's (so a stalled reservation still runs), that has
    reserved before (its connection open, the campaign in the hour's report index): another visitor's free
    impression of another creative."""
    ledger = RedisLedger(url, prefix=prefix, wall_clock=lambda: time.time() + 5, **kwargs)
    warm = dataclasses.replace(CHARGE, creative_id=71, impression_price_micros=0)
    assert ledger.impressions_reserve(charges=[warm], user_id="other", now=time.time()) == [OK]
    return ledger


def test_a_lost_reservation_of_a_process_that_died_is_voided_by_the_beats_task(
    private_redis_server: Any, fresh_platform: Any, caplog: Any
) -> None:
    prefix = f"test-ads-{uuid.uuid4().hex}:"
    web = _process(private_redis_server.url, prefix, on_lost=reservation_lost_keep)
    now = time.time()
    assert web.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]  # shown: one
    _stalled_reservation(private_redis_server, web, now)  # lost by the process, run by Redis
    assert _counted(web, now) == {"spend": 2 * PRICE, "caps_hour": 2, "served": 3, "impressions": 2}
    kept = LostReservation.objects.get()
    assert (kept.user_id, kept.decided_at, len(kept.charges)) == ("visitor", now, 1)
    assert kept.charges[0]["impression_price_micros"] == PRICE
    # the web process is gone; the worker's ledger (another process) voids what it kept
    fresh_platform.ledger_backend = RedisLedger(private_redis_server.url, prefix=prefix)
    with caplog.at_level(logging.WARNING, logger="adsite.ads.accounting.redis_ledger"):
        assert reservations_void() == {"voided": 1, "impressions": 1}
    assert "ads.reservation_voided 1 of 1 impressions" in caplog.text
    assert _counted(web, now) == ONE  # the one shown, and nothing of the one that was not
    assert not LostReservation.objects.exists()
    assert reservations_void() == {"voided": 0, "impressions": 0}  # nothing more to do


def test_a_lost_reservation_voided_by_its_process_and_by_the_task_is_given_back_once(
    private_redis_server: Any, fresh_platform: Any
) -> None:
    """The process lives on: its next reservation voids the lost one, and the task, finding the row, voids
    it again and gives back nothing more."""
    prefix = f"test-ads-{uuid.uuid4().hex}:"
    web = _process(private_redis_server.url, prefix, on_lost=reservation_lost_keep)
    now = time.time()
    assert web.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]
    _stalled_reservation(private_redis_server, web, now)
    assert web.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]  # voids, then reserves
    two_shown = _counted(web, now)
    assert (two_shown["spend"], two_shown["caps_hour"], two_shown["impressions"]) == (2 * PRICE, 2, 2)
    fresh_platform.ledger_backend = RedisLedger(private_redis_server.url, prefix=prefix)
    assert reservations_void() == {"voided": 1, "impressions": 0}
    assert _counted(web, now) == two_shown
    assert not LostReservation.objects.exists()


def test_the_platforms_ledger_keeps_what_it_loses(private_redis_server: Any, settings: Any) -> None:
    """The wiring: the ledger the platform builds from the settings hands what it loses to the database."""
    prefix = f"test-ads-{uuid.uuid4().hex}:"
    settings.ADS = {**settings.ADS, "LEDGER": "redis", "REDIS_URL": private_redis_server.url, "REDIS_PREFIX": prefix}
    previous = platform_use(Platform())
    try:
        from adsite.ads.accounting import ledger

        built = ledger()
        assert isinstance(built, RedisLedger)
        built._wall_clock = lambda: time.time() + 5
        _stalled_reservation(private_redis_server, built, time.time())
        assert LostReservation.objects.count() == 1
    finally:
        platform_use(previous)


def test_a_keeper_that_fails_leaves_the_decision_to_house_ads_and_the_process_voids_its_own(
    private_redis_server: Any, caplog: Any
) -> None:
    """The database away (or any failure to keep it): logged; the caller still sees the ledger unavailable
    (house ads), and the process's next reservation still voids what it lost."""

    def keeper_down(lost: Any) -> None:
        raise RuntimeError("database away")

    web = _process(private_redis_server.url, f"test-ads-{uuid.uuid4().hex}:", on_lost=keeper_down)
    now = time.time()
    assert web.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]
    with caplog.at_level(logging.ERROR, logger="adsite.ads.accounting.redis_ledger"):
        _stalled_reservation(private_redis_server, web, now)  # raises LedgerUnavailable, as without a keeper
    assert "ads.reservation_lost_unkept" in caplog.text
    assert web.impressions_reserve(charges=[CHARGE], user_id="visitor", now=now) == [OK]
    counted = _counted(web, now)
    assert (counted["spend"], counted["caps_hour"], counted["impressions"]) == (2 * PRICE, 2, 2)


def test_deleting_a_visitors_data_voids_their_kept_reservations_first(
    private_redis_server: Any, fresh_platform: Any
) -> None:
    prefix = f"test-ads-{uuid.uuid4().hex}:"
    web = _process(private_redis_server.url, prefix, on_lost=reservation_lost_keep)
    now = time.time()
    _stalled_reservation(private_redis_server, web, now)
    assert web.spend(campaign_id=7, now=now) == (PRICE, PRICE)  # charged for an ad nobody saw
    fresh_platform.ledger_backend = RedisLedger(private_redis_server.url, prefix=prefix)
    user_ads_forget("visitor")
    assert web.spend(campaign_id=7, now=now) == (0, 0)  # the money is back
    assert not LostReservation.objects.filter(user_id="visitor").exists()
    assert _counted(web, now)["caps_hour"] == 0


def test_while_redis_is_away_the_task_keeps_what_it_could_not_void(
    private_redis_server: Any, fresh_platform: Any
) -> None:
    prefix = f"test-ads-{uuid.uuid4().hex}:"
    web = _process(private_redis_server.url, prefix, on_lost=reservation_lost_keep)
    _stalled_reservation(private_redis_server, web, time.time())
    fresh_platform.ledger_backend = RedisLedger(private_redis_server.url, prefix=prefix)
    private_redis_server.pause()
    try:
        assert reservations_void() == {"voided": 0, "waiting": 1}
    finally:
        private_redis_server.resume()
    assert LostReservation.objects.count() == 1
    from inference.redis_clients import guard_reset

    guard_reset()
    assert reservations_void() == {"voided": 1, "impressions": 1}
    assert not LostReservation.objects.exists()
