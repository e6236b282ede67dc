"""One rule, two implementations: the Redis ledger's Lua scripts and the in-process ledger's Python must
agree on every outcome (reservations under budgets, caps and pacing-free spend; click billing, replays and
the last affordable click; viewable counts; repeat statistics; snapshots). Runs in ``make test`` on fakeredis with Lua
(``fakeredis[lua]``), the real scripts; ``make test-services`` runs the ledger tests against a real Redis."""

from __future__ import annotations

import random

import fakeredis
import pytest

from adsite.ads.accounting import Charge, MemoryLedger, RedisLedger, Snapshot

NOW = 1_700_000_000.0
CAMPAIGNS = {
    # campaign: (creatives, CPM price micros, daily budget, total budget, cap per hour, cap per day)
    1: ((10, 11), 2_000, 10_000, 25_000, 0, 0),
    2: ((20,), 0, 1_500_000, 2_000_000, 2, 3),
    3: ((30, 31), 5_000, 20_000, 20_000, 1, 0),
}
USERS = ("ann", "bob", "cy")


def charge_of(campaign: int, creative: int, rng: random.Random) -> Charge:
    _, price, daily, total, per_hour, per_day = CAMPAIGNS[campaign]
    return Charge(campaign, creative, price, daily, total, per_hour, per_day, extra_exposure_micros=rng.randrange(0, 900_000),
                  repeat=rng.choice((-1, 0, 1, 2, 3)), expected_micros=rng.randrange(0, 80_000))


def counts(snapshot: Snapshot) -> dict[str, dict[int, int]]:
    """The snapshot's counters, a missing key and a zero being the same count."""
    return {
        name: {key: value for key, value in getattr(snapshot, name).items() if value}
        for name in ("spend_total", "spend_today", "user_hour", "user_day", "impressions", "clicks", "extra_exposure",
                     "repeat_expected", "repeat_clicks")
    }


@pytest.fixture
def ledgers() -> tuple[MemoryLedger, RedisLedger]:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    return MemoryLedger(None), RedisLedger("redis://fake", prefix="parity:", client=client)


@pytest.mark.parametrize("seed", range(5))
def test_memory_and_redis_ledgers_agree_on_every_outcome(ledgers, seed: int) -> None:
    memory, redis_ledger = ledgers
    rng = random.Random(seed)
    now = NOW
    ids = [cr for creatives, *_ in CAMPAIGNS.values() for cr in creatives]
    for step in range(300):
        now += rng.choice((1, 30, 600, 3600))  # minutes and hours pass: the caps' windows roll
        user = rng.choice(USERS)
        action = rng.random()
        if action < 0.55:
            picks = [(c, rng.choice(CAMPAIGNS[c][0])) for c in rng.sample(sorted(CAMPAIGNS), rng.randint(1, 3))]
            charges = [charge_of(c, cr, rng) for c, cr in picks]
            if rng.random() < 0.5:
                results = [led.impressions_reserve(charges=charges, user_id=user, now=now) for led in ledgers]
            else:
                results = [[led.impression_reserve(charge=charges[0], user_id=user, now=now)] for led in ledgers]
        elif action < 0.85:
            campaign = rng.choice(sorted(CAMPAIGNS))
            creative = rng.choice(CAMPAIGNS[campaign][0])
            args = {
                "token_id": f"t{rng.randrange(40)}", "campaign_id": campaign, "creative_id": creative,
                "price_micros": rng.choice((0, 150_000, 400_000)), "daily_budget_micros": CAMPAIGNS[campaign][2] * 40,
                "total_budget_micros": CAMPAIGNS[campaign][3] * 40, "now": now,
                # Redis expires keys by its own clock, the test moves `now`: no token expires here
                "token_ttl_s": 10**8,
                "repeat": rng.choice((-1, 0, 1, 3)),
            }
            results = [led.click_charge(**args) for led in ledgers]
        else:
            viewed = rng.sample(ids, rng.randint(1, 3))
            for led in ledgers:
                led.viewable_add(creative_ids=viewed)
            results = [None, None]
        assert results[0] == results[1], f"step {step}: {results}"
        snapshots = [
            counts(led.snapshot(campaign_ids=sorted(CAMPAIGNS), creative_ids=ids, user_id=user, now=now))
            for led in ledgers
        ]
        assert snapshots[0] == snapshots[1], f"step {step}"
    final = memory.snapshot(campaign_ids=sorted(CAMPAIGNS), creative_ids=ids, user_id="", now=now)
    assert sum(final.repeat_expected.values()) and sum(final.repeat_clicks.values())  # the sequence counted some
    for campaign in CAMPAIGNS:
        assert memory.spend(campaign_id=campaign, now=now) == redis_ledger.spend(campaign_id=campaign, now=now)
    for creative in ids:
        assert memory.creative_stats(creative_id=creative) == redis_ledger.creative_stats(creative_id=creative)
