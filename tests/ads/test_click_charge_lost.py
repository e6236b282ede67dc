"""A click charge whose answer was lost: the request reached Redis, its reply never came back (a timeout,
a reset, a Redis stopped mid-request). The charge may have run. The click is never charged twice however
often it is retried, and its row says billed or not as the ledger's own record does once settled, so
the click rows and the spend agree.

The ledger is a ``RedisLedger`` on a redis-server of the test's own. The lost reply is made two ways: the
charge runs on Redis and its reply is dropped on the way back (or the request is dropped before it), and,
for real, the Redis process is stopped (SIGSTOP) while the charge is on its way and started again after
the client has given up.
"""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
import redis

from adsite.ads.accounting import BILLED, FREE, REPLAYED, ClickChargeUnknown, RedisLedger
from adsite.ads.models import AdClick, Campaign
from adsite.ads.services.billing import click_rows_settle
from adsite.ads.tokens import CLICK_SALT, AdToken, token_make

from .conftest import browser

pytestmark = pytest.mark.django_db

PRICE = 400_000


class LossyLedger(RedisLedger):
    """A ``RedisLedger`` whose next click charge loses its answer: ``ran=True`` the charge runs on Redis
    and the reply is dropped; ``ran=False`` the request is dropped before Redis (kept in ``lost`` so the
    test can deliver it late, as a stalled network would)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, prefix=f"test-ads-{uuid.uuid4().hex}:")
        self.lose: bool | None = None  # None: answer normally; else whether the lost charge ran
        self.lost: list[Any] = []

    def _run(self, calls: list[Any]) -> list[Any]:
        if self.lose is None or calls[0][0] != "click":
            return super()._run(calls)
        ran, self.lose = self.lose, None
        if ran:
            super()._run(calls)
        else:
            self.lost.append(calls)
        raise redis.TimeoutError("Timeout reading from socket")


@pytest.fixture
def lossy(private_redis: str, fresh_ads_state: Any, fresh_platform: Any, fresh_inference: Any) -> LossyLedger:
    ledger = LossyLedger(private_redis)
    fresh_platform.ledger_backend = ledger
    return ledger


def click_url(campaign: Campaign, serve_id: str = "serve-1") -> str:
    creative = campaign.creatives.get()
    return "/c/" + token_make(token=AdToken(serve_id, creative.id, campaign.id, "sidebar", "visitor"), salt=CLICK_SALT)


def rows() -> list[tuple[str, int]]:
    return list(AdClick.objects.order_by("id").values_list("outcome", "price_micros"))


def spent(ledger: RedisLedger, campaign: Campaign) -> int:
    return ledger.spend(campaign_id=campaign.id, now=time.time())[0]


def test_a_charge_whose_answer_was_lost_is_billed_once_however_often_the_click_is_retried(
    make_campaign: Any, lossy: LossyLedger
) -> None:
    campaign = make_campaign(bid=Decimal("0.40"))
    url = click_url(campaign)
    lossy.lose = True  # the charge runs, its answer is lost
    first = browser("visitor").get(url)
    assert first.status_code == 302 and first["Location"] == campaign.creatives.get().landing_url
    assert rows() == [("unsettled", PRICE)]  # charged or not: not known yet
    for _ in range(2):  # the visitor clicks again: the ledger answers with the first charge, charges nothing
        assert browser("visitor").get(url).status_code == 302
    assert spent(lossy, campaign) == PRICE
    assert click_rows_settle(unsettled_after_s=0) == 1
    assert rows() == [("billed", PRICE), ("replay", 0), ("replay", 0)]
    assert click_rows_settle(unsettled_after_s=0) == 0  # settled once


def test_a_lost_charge_that_never_ran_is_voided_so_it_cannot_charge_when_it_arrives_late(
    make_campaign: Any, lossy: LossyLedger
) -> None:
    campaign = make_campaign(bid=Decimal("0.40"))
    lossy.lose = False  # the request never reached Redis (yet)
    assert browser("visitor").get(click_url(campaign)).status_code == 302
    assert rows() == [("unsettled", PRICE)]
    assert click_rows_settle(unsettled_after_s=60) == 0  # too recent: the lost request may still arrive
    assert click_rows_settle(unsettled_after_s=0) == 1
    assert rows() == [("free", 0)]
    (late,) = lossy.lost
    lossy._run(late)  # the stalled request reaches Redis after all
    assert spent(lossy, campaign) == 0  # the click its row says is free costs nothing


def test_a_retry_that_arrives_before_the_lost_charge_is_billed_and_the_lost_one_is_not(
    make_campaign: Any, lossy: LossyLedger
) -> None:
    campaign = make_campaign(bid=Decimal("0.40"))
    url = click_url(campaign)
    lossy.lose = False
    browser("visitor").get(url)
    browser("visitor").get(url)  # the retry reaches Redis first and is billed
    click_rows_settle(unsettled_after_s=0)
    assert rows() == [("free", 0), ("billed", PRICE)]
    lossy._run(lossy.lost[0])  # then the lost one arrives: answered with the retry's charge
    assert spent(lossy, campaign) == PRICE


def test_redis_stopped_while_a_charge_is_on_its_way_leaves_rows_and_spend_agreeing(
    make_campaign: Any, private_redis_server: Any, fresh_ads_state: Any, fresh_platform: Any, fresh_inference: Any
) -> None:
    """A real stall: Redis is stopped (SIGSTOP) just before the charge is sent, the client gives up after
    its request timeout (0.25 s), and Redis is started again a second later, when it reads what was sent."""
    from inference.redis_clients import guard_reset

    class StallingLedger(RedisLedger):
        def _run(self, calls: list[Any]) -> list[Any]:
            if calls[0][0] == "click" and not stalled.is_set():
                stalled.set()
                private_redis_server.pause()
                threading.Timer(1.0, private_redis_server.resume).start()
            return super()._run(calls)

    stalled = threading.Event()
    ledger = StallingLedger(private_redis_server.url, prefix=f"test-ads-{uuid.uuid4().hex}:")
    stalled.set()
    ledger.click_charge(token_id="warm", campaign_id=0, creative_id=0, price_micros=0, daily_budget_micros=0,
                        total_budget_micros=0, now=time.time(), token_ttl_s=60)  # Redis has the scripts
    stalled.clear()
    fresh_platform.ledger_backend = ledger
    campaign = make_campaign(bid=Decimal("0.40"))
    url = click_url(campaign)
    response = browser("visitor").get(url)
    assert response.status_code == 302 and response["Location"] == campaign.creatives.get().landing_url
    assert rows() == [("unsettled", PRICE)]
    time.sleep(1.5)  # Redis runs again
    guard_reset()  # this process stops treating it as down (its cooldown)
    browser("visitor").get(url)  # the visitor clicks again
    click_rows_settle(unsettled_after_s=0)
    # Redis ran the charge when it woke (it reads what was sent before the client gave up): the first
    # click's row says billed, the second click is a replay, and the money is one click's
    assert rows() == [("billed", PRICE), ("replay", 0)]
    assert spent(ledger, campaign) == PRICE


def test_the_ledger_remembers_whose_charge_it_is(private_redis: str) -> None:
    ledger = LossyLedger(private_redis)
    args = {"token_id": "t1", "campaign_id": 3, "creative_id": 30, "price_micros": PRICE, "daily_budget_micros": 10**6,
            "total_budget_micros": 10**6, "now": time.time(), "token_ttl_s": 60}
    ledger.lose = True
    with pytest.raises(ClickChargeUnknown):
        ledger.click_charge(click_id=11, **args)
    assert ledger.click_charge(click_id=12, **args) == REPLAYED  # a retry: the charge is click 11's
    settle = {"token_id": "t1", "campaign_id": 3, "token_ttl_s": 60}
    assert ledger.click_charge_settle(click_id=11, **settle) == (BILLED, PRICE)
    assert ledger.click_charge_settle(click_id=12, **settle) == (REPLAYED, 0)
    assert ledger.click_charge_settle(click_id=13, token_id="t2", campaign_id=3, token_ttl_s=60) == (FREE, 0)
    assert ledger.click_charge(click_id=14, **{**args, "token_id": "t2"}) == REPLAYED  # voided: never charged
    assert ledger.spend(campaign_id=3, now=time.time())[0] == PRICE
