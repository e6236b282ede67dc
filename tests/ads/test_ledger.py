"""The ledger: money and caps exact under concurrency (threads in-process, processes on real Redis),
billing a click token at most once, and the embedded ledger surviving a restart."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from adsite.ads.accounting import (
    BILLED,
    CAPPED_HOUR,
    FREE,
    OK,
    OUT_OF_BUDGET,
    REPLAYED,
    Charge,
    ClickRowOwed,
    MemoryLedger,
    RedisLedger,
    Snapshot,
)

PRICE = 7_000  # one CPM impression at 7.00 CPM, in micros
BUDGET = 1_000_000  # 1.00: 142.86 impressions


def cpm_charge(campaign_id: int = 1, *, budget: int = BUDGET, cap_hour: int = 0, cap_day: int = 0) -> Charge:
    return Charge(campaign_id, 10, PRICE, budget, budget, cap_hour, cap_day)


def test_memory_ledger_never_overspends_under_threads() -> None:
    ledger = MemoryLedger(None)
    results: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(60):
            outcome = ledger.impression_reserve(charge=cpm_charge(), user_id=f"t{n}-{i}", now=time.time())
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total, _ = ledger.spend(campaign_id=1, now=time.time())
    assert BUDGET <= total < BUDGET + PRICE
    assert results.count(OK) * PRICE == total
    assert results.count(OUT_OF_BUDGET) == 480 - results.count(OK)


def test_memory_ledger_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    first = MemoryLedger(path)
    now = time.time()
    for _ in range(3):
        assert first.impression_reserve(charge=cpm_charge(cap_hour=3), user_id="v", now=now) == OK
    assert first.click_charge(
        token_id="tok", campaign_id=2, creative_id=20, price_micros=500_000, daily_budget_micros=BUDGET,
        total_budget_micros=BUDGET, now=now, token_ttl_s=60,
    ) == BILLED
    restarted = MemoryLedger(path)
    assert restarted.spend(campaign_id=1, now=now) == (3 * PRICE, 3 * PRICE)
    assert restarted.spend(campaign_id=2, now=now) == (500_000, 500_000)
    assert restarted.impression_reserve(charge=cpm_charge(cap_hour=3), user_id="v", now=now) == CAPPED_HOUR
    assert restarted.click_charge(
        token_id="tok", campaign_id=2, creative_id=20, price_micros=500_000, daily_budget_micros=BUDGET,
        total_budget_micros=BUDGET, now=now, token_ttl_s=60,
    ) == REPLAYED
    assert restarted.creative_stats(creative_id=10).impressions == 3
    assert restarted.creative_stats(creative_id=20).clicks == 1
    # the repeat statistics too (what the wear-out of repeated ads is learned from)
    first.impression_reserve(charge=Charge(4, 40, 0, BUDGET, BUDGET, repeat=2, expected_micros=30_000), user_id="w", now=now)
    first.click_charge(token_id="tok-r", campaign_id=4, creative_id=40, price_micros=0, daily_budget_micros=BUDGET,
                       total_budget_micros=BUDGET, now=now, token_ttl_s=60, repeat=2)
    assert MemoryLedger(path).repeat_statistics(creative_id=40) == ([0, 0, 30_000, 0], [0, 0, 1, 0])
    snap = MemoryLedger(path).snapshot(campaign_ids=[4], creative_ids=[40, 10], user_id="w", now=now)
    assert snap.repeat_expected == {0: 0, 1: 0, 2: 30_000, 3: 0} and snap.repeat_clicks[2] == 1


def test_click_tokens_bill_once_and_only_while_budget_lasts(each_ledger: Any) -> None:
    ledger = each_ledger
    now = time.time()
    args = {"campaign_id": 3, "creative_id": 30, "price_micros": 400_000, "daily_budget_micros": 1_000_000,
            "total_budget_micros": 1_000_000, "now": now, "token_ttl_s": 60}
    outcomes = [ledger.click_charge(token_id=f"t{i}", **args) for i in range(4)]
    assert outcomes == [BILLED, BILLED, BILLED, FREE]  # 0.4 + 0.4 + 0.4: over by less than one click
    assert ledger.click_charge(token_id="t0", **args) == REPLAYED
    assert ledger.spend(campaign_id=3, now=now) == (1_200_000, 1_200_000)
    assert ledger.creative_stats(creative_id=30).clicks == 4


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.requires_redis)])
def test_click_rows_owed_are_kept_until_settled(backend: str, tmp_path: Path) -> None:
    ledger: Any
    if backend == "redis":
        if not settings.REDIS_URL:
            pytest.skip("REDIS_URL is not set")
        prefix = f"test-ads-{uuid.uuid4().hex}:"
        ledger = RedisLedger(settings.REDIS_URL, prefix=prefix)
        reopen = lambda: RedisLedger(settings.REDIS_URL, prefix=prefix)  # noqa: E731
    else:
        ledger = MemoryLedger(tmp_path / "ledger.sqlite3")
        reopen = lambda: MemoryLedger(tmp_path / "ledger.sqlite3")  # noqa: E731
    assert ledger.click_rows_owed(limit=10) == []
    ledger.click_row_owe(owed=ClickRowOwed(7, "billed", 400_000))
    ledger.click_row_owe(owed=ClickRowOwed(8, "replay", 0))
    ledger.click_row_owe(owed=ClickRowOwed(8, "billed", 500_000))  # the later word for a click wins
    restarted = reopen()
    owed = restarted.click_rows_owed(limit=10)
    assert sorted(owed, key=lambda o: o.click_id) == [ClickRowOwed(7, "billed", 400_000), ClickRowOwed(8, "billed", 500_000)]
    assert len(restarted.click_rows_owed(limit=1)) == 1
    restarted.click_rows_settled(click_ids=[7])
    assert reopen().click_rows_owed(limit=10) == [ClickRowOwed(8, "billed", 500_000)]
    restarted.clear()
    assert reopen().click_rows_owed(limit=10) == []


@pytest.mark.requires_redis
def test_redis_page_reservation_survives_redis_forgetting_its_scripts() -> None:
    """A page's placements are reserved in one pipeline of EVALSHA calls; after a Redis restart (here:
    SCRIPT FLUSH) the scripts are loaded again and every placement is counted exactly once."""
    from tests.conftest import site_redis

    ledger = RedisLedger(settings.REDIS_URL, prefix=f"test-ads-{uuid.uuid4().hex}:")
    now = time.time()
    charges = [cpm_charge(1, cap_hour=5), cpm_charge(2, cap_hour=5)]
    assert ledger.impressions_reserve(charges=charges, user_id="reader", now=now) == [OK, OK]
    site_redis().script_flush()  # on a cluster: every node
    assert ledger.impressions_reserve(charges=charges, user_id="reader", now=now) == [OK, OK]
    snapshot = ledger.snapshot(campaign_ids=[1, 2], creative_ids=[10], user_id="reader", now=now)
    assert snapshot.spend_total == {1: 2 * PRICE, 2: 2 * PRICE}
    assert snapshot.user_hour == {1: 2, 2: 2}
    assert snapshot.impressions == {10: 4}
    ledger.clear()


def test_a_page_is_reserved_in_one_round_trip_on_one_redis() -> None:
    """On one Redis (not a cluster) a page's placements are one script call: one round trip for the page,
    whatever its number of placements, with the same outcomes as placement by placement (a budget refusal
    gives the visitor's cap back; only what holds counts in the creative's statistics)."""
    import fakeredis

    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    sent: list[int] = []
    pipeline = client.pipeline

    def counted(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute

        def run(*a: Any, **k: Any) -> Any:
            sent.append(len(pipe))
            return execute(*a, **k)

        pipe.execute = run
        return pipe

    client.pipeline = counted  # type: ignore[method-assign]
    ledger = RedisLedger("redis://fake", prefix="one-trip:", client=client)
    now = 1_700_000_000.0
    poor = Charge(3, 30, PRICE, PRICE, PRICE)  # no caps; one impression's budget, then refused
    page = [cpm_charge(1, cap_hour=1), poor, cpm_charge(2, cap_hour=1)]
    assert ledger.impressions_reserve(charges=page, user_id="reader", now=now) == [OK, OK, OK]
    sent.clear()
    again = [poor, cpm_charge(2, cap_hour=2), cpm_charge(1, cap_hour=1)]
    assert ledger.impressions_reserve(charges=again, user_id="reader", now=now) == [OUT_OF_BUDGET, OK, CAPPED_HOUR]
    assert sent == [1]  # one call in one pipeline (the hour's report index was written with the first page)
    snapshot = ledger.snapshot(campaign_ids=[1, 2, 3], creative_ids=[10, 30], user_id="reader", now=now)
    assert snapshot.user_hour == {1: 1, 2: 2, 3: 1}  # campaign 3's second hold was given back
    assert snapshot.impressions == {10: 3, 30: 1}
    assert snapshot.spend_total == {1: PRICE, 2: 2 * PRICE, 3: PRICE}


def test_decisions_share_campaign_counters_for_a_second_but_never_a_visitors_caps_or_the_money_check() -> None:
    """``shared_max_age_s``: a process's snapshots reuse the campaigns' spend and the creatives' statistics for
    that long (every decision reads them: ~120 hashes); the visitor's caps are read every time, and a
    reservation planned from an old figure is still refused once the budget is gone."""
    import fakeredis

    clock = [100.0]
    ledger = RedisLedger("redis://fake", prefix="shared:", client=fakeredis.FakeRedis(server=fakeredis.FakeServer()),
                         shared_max_age_s=1.0, clock=lambda: clock[0])
    now = 1_700_000_000.0
    last = Charge(5, 50, PRICE, PRICE, PRICE)  # a budget of one impression

    def seen() -> Snapshot:
        return ledger.snapshot(campaign_ids=[5], creative_ids=[50], user_id="reader", now=now)

    assert seen().spend_total == {5: 0}
    assert ledger.impressions_reserve(charges=[last], user_id="reader", now=now) == [OK]
    clock[0] += 0.5
    shared = seen()
    assert shared.spend_total == {5: 0} and shared.impressions == {50: 0}  # as this process read them 0.5 s ago
    assert shared.user_hour == {5: 1}  # the visitor's own caps: read now
    # planned from the old figure, the second impression is refused by the budget's own check
    assert ledger.impressions_reserve(charges=[last], user_id="reader", now=now) == [OUT_OF_BUDGET]
    clock[0] += 0.6
    fresh = seen()
    assert fresh.spend_total == {5: PRICE} and fresh.impressions == {50: 1}
    # another day's spend is never taken for today's
    assert ledger.snapshot(campaign_ids=[5], creative_ids=[], user_id="", now=now + 86_400).spend_today == {5: 0}


# ---- real Redis, many processes ----------------------------------------------------------------


def _redis_client_worker(url: str, prefix: str, n: int, users: int, rounds: int, queue: Any) -> None:
    ledger = RedisLedger(url, prefix=prefix)
    outcomes: dict[str, int] = {}
    for i in range(rounds):
        user = f"user-{(n + i) % users}"
        outcome = ledger.impression_reserve(charge=cpm_charge(cap_hour=5, cap_day=7), user_id=user, now=time.time())
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        # a campaign whose caps bind long before its budget: every visitor comes back ~10 times
        capped = ledger.impression_reserve(charge=Charge(3, 30, PRICE, 100 * BUDGET, 100 * BUDGET, 2, 3), user_id=user,
                                           now=time.time())
        outcomes[f"capped-campaign {capped}"] = outcomes.get(f"capped-campaign {capped}", 0) + 1
        click = ledger.click_charge(
            token_id=f"click-{i // 2}", campaign_id=2, creative_id=21, price_micros=30_000,
            daily_budget_micros=BUDGET, total_budget_micros=BUDGET, now=time.time(), token_ttl_s=60,
        ) if i % 2 == 0 else None
        if click == BILLED:
            outcomes["click_billed"] = outcomes.get("click_billed", 0) + 1
    queue.put(outcomes)


@pytest.mark.requires_redis
def test_redis_ledger_budget_and_caps_hold_across_processes() -> None:
    prefix = f"test-ads-{uuid.uuid4().hex}:"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    procs = [
        context.Process(target=_redis_client_worker, args=(settings.REDIS_URL, prefix, n, 30, 40, queue))
        for n in range(8)
    ]
    for proc in procs:
        proc.start()
    totals: dict[str, int] = {}
    for _ in procs:
        for key, value in queue.get(timeout=120).items():
            totals[key] = totals.get(key, 0) + value
    for proc in procs:
        proc.join(timeout=30)
    ledger = RedisLedger(settings.REDIS_URL, prefix=prefix)
    now = time.time()
    spent, today = ledger.spend(campaign_id=1, now=now)
    # 320 attempts by 30 visitors capped at 7 a day (<= 210 impressions) against a 143-impression budget
    assert BUDGET <= spent < BUDGET + PRICE
    assert totals[OK] * PRICE == spent == today
    assert totals[OK] == ledger.creative_stats(creative_id=10).impressions
    # campaign 1's caps may or may not bind before its budget runs out (the order of 8 processes decides);
    # campaign 3's bind for every visitor: 2 impressions each, every later attempt refused as capped
    assert totals[f"capped-campaign {OK}"] == 30 * 2
    assert totals[f"capped-campaign {CAPPED_HOUR}"] == 320 - 30 * 2
    snapshot = ledger.snapshot(campaign_ids=[1], creative_ids=[10], user_id="user-0", now=now)
    for user in range(30):
        snap = ledger.snapshot(campaign_ids=[1, 3], creative_ids=[], user_id=f"user-{user}", now=now)
        assert snap.user_hour.get(1, 0) <= 5 and snap.user_day.get(1, 0) <= 7
        assert snap.user_hour[3] == 2
    assert snapshot.spend_total[1] == spent
    # 20 distinct click tokens, each billed once however many processes replayed them
    assert totals.get("click_billed", 0) == 20
    assert ledger.spend(campaign_id=2, now=now)[0] == 20 * 30_000
    ledger.clear()
