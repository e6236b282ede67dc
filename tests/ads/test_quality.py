"""A creative's quality is learned from clicks relative to the clicks its audience's interest predicted.

The ledger counts each impression's exposure (the visitor's interest lift) with the impression;
``quality_posteriors`` turns clicks / exposure into a Gamma posterior that ``ads_select`` samples.
"""

from __future__ import annotations

import random
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from adsite.ads.accounting import OK, Charge, MemoryLedger, RedisLedger, ledger
from adsite.ads.catalog import catalog_current
from adsite.ads.decisions import DecisionContext, PlacementRequest, ads_select
from adsite.ads.scoring import quality_posteriors

pytestmark = pytest.mark.django_db

PRICE = 7_000


def test_exposure_is_counted_with_the_impression_and_moves_no_money(each_ledger: Any) -> None:
    book = each_ledger
    now = time.time()
    for extra in (3_200_000, -800_000, 0):
        charge = Charge(1, 10, PRICE, 1_000_000, 1_000_000, extra_exposure_micros=extra)
        assert book.impression_reserve(charge=charge, user_id="v", now=now) == OK
    snap = book.snapshot(campaign_ids=[1], creative_ids=[10, 11], user_id="v", now=now)
    assert snap.impressions[10] == 3 and snap.extra_exposure[10] == 2_400_000 and snap.extra_exposure[11] == 0
    assert book.spend(campaign_id=1, now=now) == (3 * PRICE, 3 * PRICE)  # exactly what the prices say


def _click(campaign_id: int, creative_id: int) -> None:
    ledger().click_charge(
        token_id=uuid.uuid4().hex, campaign_id=campaign_id, creative_id=creative_id, price_micros=0,
        daily_budget_micros=10**12, total_budget_micros=10**12, now=time.time(), token_ttl_s=60,
    )


def test_a_creative_shown_only_to_matched_visitors_is_not_over_credited(
    make_campaign: Any, interests: Any, fresh_ads_state: MemoryLedger, settings: Any
) -> None:
    matched = make_campaign(advertiser="Travel Co", interests={"travel": 1.0})
    broad = make_campaign(advertiser="Everyone Co")
    settings.ADS = {**settings.ADS, "CATALOG_SECONDS": 600.0}
    interests.scores["traveller"] = {"travel": 0.9}
    rng, clicks_rng = random.Random(5), random.Random(6)
    for _ in range(1500):  # travellers only: both campaigns fill the two slots of every page
        decision = ads_select(user_id="traveller", placements=[PlacementRequest("sidebar"), PlacementRequest("footer")],
                              context=DecisionContext(rng=rng, explain=True))
        assert decision.explanation is not None
        lifts = {c["campaign_id"]: c["interest_lift"] for c in decision.explanation["candidates"]}
        for choice in decision.choices:
            assert choice.campaign is not None and choice.creative is not None
            # both creatives equally good: travellers click the travel ad as much more as the interest model says
            if clicks_rng.random() < 0.02 * lifts[choice.campaign.id]:
                _click(choice.campaign.id, choice.creative.id)
    campaigns = catalog_current().campaigns
    snap = fresh_ads_state.snapshot(campaign_ids=[], creative_ids=[cr.id for c in campaigns for cr in c.creatives],
                                    user_id="", now=time.time())
    m, b = matched.creatives.get().id, broad.creatives.get().id
    raw = (snap.clicks[m] / snap.impressions[m]) / (snap.clicks[b] / snap.impressions[b])
    assert lifts[matched.id] > 2.5 and lifts[broad.id] == 1.0
    assert raw > 2.5  # its click rate alone would credit the travel creative with its audience's interest
    quality = quality_posteriors(campaigns, snap)
    assert 0.6 < quality[m].mean / quality[b].mean < 1.5
    # a visitor without travel interest (lift 1 for both): the travel creative's clicks from travellers
    # do not make it the favourite (by click rate, 0.16 against 0.03, it would win nearly every time)
    seen = [ads_select(user_id="newcomer", placements=[PlacementRequest("sidebar")], context=DecisionContext(rng=rng))
            .choices[0].campaign for _ in range(300)]
    assert sum(c is not None and c.id == matched.id for c in seen) / len(seen) < 0.6


def test_a_creative_with_higher_hidden_quality_gets_more_traffic(
    make_campaign: Any, interests: Any, fresh_ads_state: MemoryLedger, settings: Any
) -> None:
    campaign = make_campaign(bid=Decimal("0.50"), creatives=2)
    settings.ADS = {**settings.ADS, "CATALOG_SECONDS": 600.0}
    better, worse = (cr.id for cr in campaign.creatives.order_by("-id"))  # the sort's tie-break favours the lower id
    hidden = {better: 0.04, worse: 0.02}
    rng, clicks_rng = random.Random(11), random.Random(12)
    shown: list[int] = []
    for i in range(2000):
        choice = ads_select(user_id=f"u{i}", placements=[PlacementRequest("sidebar")], context=DecisionContext(rng=rng)).choices[0]
        assert choice.creative is not None
        shown.append(choice.creative.id)
        if clicks_rng.random() < hidden[choice.creative.id]:
            _click(campaign.id, choice.creative.id)
    assert shown[:100].count(worse) >= 20  # both explored at first
    assert shown[-500:].count(better) >= 0.7 * 500


def test_a_click_reaches_the_creatives_quality_once_the_shared_statistics_are_read_again(
    make_campaign: Any, interests: Any, fresh_platform: Any, settings: Any
) -> None:
    """A process's decisions share the creatives' statistics for ``SNAPSHOT_MAX_AGE_S`` and with them the
    quality posteriors computed from them; a click counts in the posterior a decision samples from at the
    first decision after that age, never later."""
    import fakeredis

    from adsite.ads.scoring import ADSITE_POLICY, Candidate, Knobs, Quality

    settings.ADS = {**settings.ADS, "CATALOG_SECONDS": 600.0}  # one catalog build: the posteriors are shared
    clock = [100.0]
    fresh_platform.ledger_backend = RedisLedger(
        "redis://fake", prefix="quality-shared:", client=fakeredis.FakeRedis(server=fakeredis.FakeServer()),
        shared_max_age_s=1.0, clock=lambda: clock[0])
    seen: list[float] = []

    class Recording:
        name, reads_quality = "recording", True

        def click_probability(self, candidate: Candidate, *, quality: Quality | None, rng: random.Random,
                              knobs: Knobs) -> float:
            assert quality is not None
            seen.append(quality.shape)  # prior shape + the creative's counted clicks
            return quality.mean * candidate.lift

        def value(self, candidate: Candidate, p_click: float) -> float:
            return ADSITE_POLICY.value(candidate, p_click)

    campaign = make_campaign(advertiser="Solo Co")
    creative = campaign.creatives.get()

    def shape_now() -> float:
        seen.clear()
        ads_select(user_id="reader", placements=[PlacementRequest("sidebar")], context=DecisionContext(policy=Recording()))
        return seen[-1]

    before = shape_now()
    assert ledger().click_charge(
        token_id=uuid.uuid4().hex, campaign_id=campaign.id, creative_id=creative.id, price_micros=0,
        daily_budget_micros=10**12, total_budget_micros=10**12, now=time.time(), token_ttl_s=60,
    ) == "free"  # counted, no price
    clock[0] += 0.5
    assert shape_now() == before  # the statistics (and posteriors) this process read 0.5 s ago
    clock[0] += 0.6
    assert shape_now() == before + 1  # read again: the click counts
