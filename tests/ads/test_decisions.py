"""ads_select: eligibility, targeting, caps, pacing, tiers, distinct advertisers, exploration, house ads."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from adsite.ads.accounting import Charge
from adsite.ads.catalog import catalog_invalidate
from adsite.ads.decisions import DecisionContext, PlacementRequest, ads_select
from adsite.ads.models import Campaign

pytestmark = pytest.mark.django_db

SIDEBAR = [PlacementRequest("sidebar")]


def shown(decision: Any) -> list[int | None]:
    return [choice.campaign.id if choice.campaign else None for choice in decision.choices]


def test_only_active_campaigns_inside_their_dates_are_shown(make_campaign: Any, interests: Any) -> None:
    live = make_campaign()
    make_campaign(status=Campaign.Status.PAUSED, bid=Decimal("500"))
    make_campaign(starts_at=timezone.now() + timedelta(days=1), bid=Decimal("500"))
    make_campaign(ends_at=timezone.now() - timedelta(minutes=1), starts_at=timezone.now() - timedelta(days=2), bid=Decimal("500"))
    for _ in range(20):
        assert shown(ads_select(user_id="u", placements=SIDEBAR)) == [live.id]


def test_device_and_hour_targeting_remove_campaigns_as_untargeted(make_campaign: Any, interests: Any) -> None:
    hour = int(time.time() // 3600) % 24
    mobile = make_campaign(devices=["mobile"], bid=Decimal("500"))
    other_hour = make_campaign(hours=[(hour + 3) % 24], bid=Decimal("500"))
    everyone = make_campaign()
    desktop = ads_select(user_id="u", placements=SIDEBAR, context=DecisionContext(device="desktop", explain=True))
    assert shown(desktop) == [everyone.id]
    assert desktop.filtered == {"untargeted": 2}
    reasons = {row["campaign_id"]: row["reason"] for row in desktop.explanation["filtered"]}
    assert reasons == {mobile.id: "untargeted", other_hour.id: "untargeted"}
    assert shown(ads_select(user_id="u2", placements=SIDEBAR, context=DecisionContext(device="mobile"))) == [mobile.id]


def test_a_creative_only_fills_placements_of_its_size(make_campaign: Any, interests: Any) -> None:
    wide = make_campaign(size="728x90", bid=Decimal("500"))
    make_campaign(size="300x250")
    decision = ads_select(user_id="u", placements=[PlacementRequest("leaderboard")])
    assert shown(decision) == [wide.id]
    assert ads_select(user_id="u", placements=[PlacementRequest("sidebar")]).choices[0].campaign.id != wide.id


def test_visitors_see_the_campaign_targeting_their_interests(make_campaign: Any, interests: Any) -> None:
    travel = make_campaign(interests={"travel": 1.0})
    pets = make_campaign(interests={"pets": 1.0})
    interests.scores["traveller"] = {"travel": 0.8, "pets": 0.05, "sports": 0.15}
    interests.scores["dog-owner"] = {"pets": 0.9, "travel": 0.1}
    rng = random.Random(1)
    traveller = [shown(ads_select(user_id="traveller", placements=SIDEBAR, context=DecisionContext(rng=rng)))[0] for _ in range(40)]
    owner = [shown(ads_select(user_id="dog-owner", placements=SIDEBAR, context=DecisionContext(rng=rng)))[0] for _ in range(40)]
    assert traveller.count(travel.id) >= 30  # Thompson sampling still explores a little
    assert owner.count(pets.id) >= 30


def test_why_this_ad_claims_an_interest_only_when_the_visitor_has_one(make_campaign: Any, interests: Any) -> None:
    make_campaign(interests={"travel": 1.0})
    interests.scores["traveller"] = {"travel": 0.8, "pets": 0.05, "sports": 0.15}
    interests.scores["newcomer"] = dict(interests.scores[""])  # no history: the population's answer
    traveller = ads_select(user_id="traveller", placements=SIDEBAR).choices[0].reason
    assert "matches your interest in travel" in traveller
    for visitor in ("newcomer", "nobody-known"):
        reason = ads_select(user_id=visitor, placements=SIDEBAR).choices[0].reason
        assert "your interest" not in reason and "for readers of travel" in reason


def test_interest_threshold_keeps_a_campaign_from_uninterested_visitors(make_campaign: Any, interests: Any) -> None:
    strict = make_campaign(interests={"science": 1.0}, interest_min_score=0.3, bid=Decimal("500"))
    fallback = make_campaign()
    interests.scores["scientist"] = {"science": 0.6, "travel": 0.4}
    interests.scores["tourist"] = {"travel": 0.9, "science": 0.1}
    assert shown(ads_select(user_id="scientist", placements=SIDEBAR)) == [strict.id]
    tourist = ads_select(user_id="tourist", placements=SIDEBAR)
    assert shown(tourist) == [fallback.id]
    assert tourist.filtered == {"untargeted": 1}


def test_frequency_caps_per_hour_hold_for_each_visitor(make_campaign: Any, interests: Any) -> None:
    capped = make_campaign(cap_per_hour=2, cap_per_day=10, bid=Decimal("500"))
    other = make_campaign()
    seen = [shown(ads_select(user_id="u", placements=SIDEBAR))[0] for _ in range(5)]
    assert seen == [capped.id, capped.id, other.id, other.id, other.id]
    assert shown(ads_select(user_id="someone-else", placements=SIDEBAR)) == [capped.id]
    next_hour = time.time() + 3600
    assert shown(ads_select(user_id="u", placements=SIDEBAR, context=DecisionContext(now=next_hour))) == [capped.id]


def test_daily_cap_holds_across_hours(make_campaign: Any, interests: Any) -> None:
    capped = make_campaign(cap_per_hour=5, cap_per_day=3, bid=Decimal("500"))
    day_start = (time.time() // 86400) * 86400
    seen = [
        shown(ads_select(user_id="u", placements=SIDEBAR, context=DecisionContext(now=day_start + 3600 * h)))[0]
        for h in range(6)
    ]
    assert seen == [capped.id] * 3 + [None] * 3


def test_a_campaign_out_of_budget_is_not_shown(make_campaign: Any, interests: Any, fresh_ads_state: Any) -> None:
    cpm = make_campaign(pricing=Campaign.Pricing.CPM, bid=Decimal("1000"), total_budget=Decimal("3"), daily_budget=Decimal("3"))
    # CPM 1000 = 1.00 per impression: three impressions spend the budget
    seen = [shown(ads_select(user_id=f"u{i}", placements=SIDEBAR))[0] for i in range(5)]
    assert seen == [cpm.id] * 3 + [None, None]
    assert fresh_ads_state.spend(campaign_id=cpm.id, now=time.time()) == (3_000_000, 3_000_000)
    assert ads_select(user_id="x", placements=SIDEBAR).filtered == {"out_of_budget": 1}


def test_pacing_throttles_a_campaign_ahead_of_its_daily_schedule(
    make_campaign: Any, interests: Any, fresh_ads_state: Any, settings: Any
) -> None:
    settings.ADS = {**settings.ADS, "PACING": True, "PACING_SLACK": 0.0}
    ahead = make_campaign(daily_budget=Decimal("100"), bid=Decimal("500"))
    behind = make_campaign(daily_budget=Decimal("100"))
    noon = (time.time() // 86400) * 86400 + 12 * 3600
    # spend 60 of 100 by noon (50% of the day): ahead of an even spread
    charge = Charge(ahead.id, ahead.creatives.first().id, 60_000_000, 100_000_000, 1_000_000_000)
    fresh_ads_state.impression_reserve(charge=charge, user_id="", now=noon)
    decision = ads_select(user_id="u", placements=SIDEBAR, context=DecisionContext(now=noon))
    assert shown(decision) == [behind.id]
    assert decision.filtered == {"paced": 1}
    # by evening the schedule has caught up with it
    assert shown(ads_select(user_id="u", placements=SIDEBAR, context=DecisionContext(now=noon + 4 * 3600))) == [ahead.id]


def test_campaigns_held_back_are_counted_for_the_dashboard_by_the_process_itself(
    make_campaign: Any, interests: Any, fresh_ads_state: Any, settings: Any
) -> None:
    """``ads_campaign_filtered_total`` (the dashboard's delivery problems): a decision adds its held-back campaigns
    up in the process; the process's own thread writes them to the series, with no further decision needed."""
    from prometheus_client import REGISTRY

    from adsite.ads.metrics import decision_metrics_flush

    settings.ADS = {**settings.ADS, "PACING": True, "PACING_SLACK": 0.0}
    ahead = make_campaign(daily_budget=Decimal("100"), bid=Decimal("500"))
    make_campaign(daily_budget=Decimal("100"))
    noon = (time.time() // 86400) * 86400 + 12 * 3600
    fresh_ads_state.impression_reserve(
        charge=Charge(ahead.id, ahead.creatives.first().id, 60_000_000, 100_000_000, 1_000_000_000), user_id="", now=noon)

    def paced() -> float:
        return REGISTRY.get_sample_value("ads_campaign_filtered_total", {"campaign": str(ahead.id), "reason": "paced"}) or 0.0

    decision_metrics_flush()  # what earlier tests' decisions counted (campaign ids are reused between tests)
    before = paced()
    for i in range(3):
        assert ads_select(user_id=f"u{i}", placements=SIDEBAR, context=DecisionContext(now=noon)).filtered == {"paced": 1}
    waited = time.monotonic() + 30  # the thread writes every FILTERED_FLUSH_S (1 s); a loaded host may delay it
    while paced() < before + 3 and time.monotonic() < waited:
        time.sleep(0.05)
    assert paced() == before + 3


def test_higher_tiers_win_and_house_ads_come_last(make_campaign: Any, interests: Any) -> None:
    house = make_campaign(tier=Campaign.Tier.HOUSE, pricing=Campaign.Pricing.CPM, bid=Decimal("0"))
    standard = make_campaign(bid=Decimal("900"))
    sponsor = make_campaign(tier=Campaign.Tier.SPONSORSHIP, pricing=Campaign.Pricing.CPM, bid=Decimal("1"))
    decision = ads_select(user_id="u", placements=[PlacementRequest("sidebar"), PlacementRequest("footer"), PlacementRequest("leaderboard")])
    assert shown(decision) == [sponsor.id, standard.id, house.id]
    assert [c.house for c in decision.choices] == [False, False, True]


def test_one_advertiser_appears_once_per_page(make_campaign: Any, interests: Any) -> None:
    acme = {make_campaign(advertiser="Acme", bid=Decimal("900"), creatives=2).id, make_campaign(advertiser="Acme", bid=Decimal("8")).id}
    other = make_campaign(advertiser="Globex")
    decision = ads_select(user_id="u", placements=[PlacementRequest("sidebar"), PlacementRequest("footer"), PlacementRequest("in_article")])
    assert shown(decision)[0] in acme
    assert shown(decision)[1:] == [other.id, None]
    assert decision.choices[2].house and decision.choices[2].creative is None


def test_thompson_sampling_gets_a_new_creative_shown(make_campaign: Any, interests: Any, fresh_ads_state: Any) -> None:
    old = make_campaign(advertiser="Old", bid=Decimal("0.50"))
    new = make_campaign(advertiser="New", bid=Decimal("0.50"))
    old_creative = old.creatives.get().id
    # the established creative: 1,000 impressions at a 2% click rate
    fresh_ads_state.statistics_add(creative_id=old_creative, impressions=1000, clicks=20, extra_exposure_micros=0)
    rng = random.Random(7)
    seen = [shown(ads_select(user_id=f"u{i}", placements=SIDEBAR, context=DecisionContext(rng=rng)))[0] for i in range(200)]
    assert seen.count(new.id) >= 20  # explored, though it has never been clicked
    assert seen.count(old.id) >= 20


def test_when_inference_is_down_only_house_ads_run(make_campaign: Any, interests: Any) -> None:
    make_campaign(bid=Decimal("900"))
    house = make_campaign(tier=Campaign.Tier.HOUSE, pricing=Campaign.Pricing.CPM, bid=Decimal("0"))
    interests.down = True
    decision = ads_select(user_id="u", placements=[PlacementRequest("sidebar"), PlacementRequest("footer")], context=DecisionContext(explain=True))
    assert decision.choices[0].campaign.id == house.id and decision.choices[0].house
    assert decision.choices[1].creative is None and decision.choices[1].house  # the site's own house ad
    assert decision.fallback_reason == "error"
    assert decision.filtered == {"prediction_failed": 1}
    assert decision.explanation["prediction_failed"] is True


def test_visitors_who_refused_tracking_get_ads_from_the_page_not_from_a_profile(make_campaign: Any, interests: Any) -> None:
    make_campaign(interests={"travel": 1.0}, cap_per_hour=1)
    pets = make_campaign(interests={"pets": 1.0}, cap_per_hour=1)
    interests.scores["u"] = {"travel": 1.0}
    context = DecisionContext(personalized=False, categories=("pets",), rng=random.Random(3))
    decisions = [ads_select(user_id="u", placements=SIDEBAR, context=context) for _ in range(10)]
    assert "u" not in interests.users  # the population may be read, never the visitor's profile
    assert all(d.user_id == "" for d in decisions)
    assert sum(shown(d) == [pets.id] for d in decisions) >= 8  # no per-person cap counted either


def test_explanation_lists_interests_candidates_and_filters(make_campaign: Any, interests: Any) -> None:
    make_campaign(interests={"travel": 1.0})
    capped = make_campaign(cap_per_hour=1, bid=Decimal("900"))
    interests.scores["u"] = {"travel": 0.7, "pets": 0.3}
    ads_select(user_id="u", placements=SIDEBAR)
    decision = ads_select(user_id="u", placements=SIDEBAR, context=DecisionContext(explain=True))
    explanation = decision.explanation
    # the answer's own score, as inference wrote it (the share 0.7 is what ``shares()`` reads back)
    assert explanation["interests"]["scores"][0] == {"category": "travel", "score": round(decision.interest_scores[0][1], 6)}
    assert decision.interest_scores[0][0] == "travel"
    assert {row["campaign_id"] for row in explanation["filtered"]} == {capped.id}
    assert explanation["filtered"][0]["reason"] == "capped"
    assert explanation["candidates"] and all("p_click" in row for row in explanation["candidates"])
    assert "travel" in decision.choices[0].reason


def test_sampled_explanations_are_kept_and_bounded(make_campaign: Any, interests: Any, settings: Any) -> None:
    from adsite.ads.models import DecisionExplanation

    make_campaign()
    settings.ADS = {**settings.ADS, "EXPLAIN_SAMPLE": 1.0, "EXPLAIN_KEEP": 5}
    for i in range(80):
        ads_select(user_id=f"u{i}", placements=SIDEBAR)
    assert 5 <= DecisionExplanation.objects.count() < 80
    catalog_invalidate()


def test_an_explanation_asked_for_scores_every_candidate_and_names_untargeted_campaigns(
    make_campaign: Any, interests: Any
) -> None:
    for _ in range(24):
        make_campaign(interests={"travel": 1.0})
    picky = make_campaign(interests={"pets": 1.0}, interest_min_score=0.5)
    interests.scores["u"] = {"travel": 0.7, "pets": 0.1}
    explanation = ads_select(user_id="u", placements=SIDEBAR, context=DecisionContext(explain=True)).explanation
    assert len(explanation["candidates"]) == 24  # every candidate's score, not only the best 20
    assert all(row["expected_value_micros"] >= 0 and "interest_lift" in row for row in explanation["candidates"])
    assert {"campaign_id": picky.id, "campaign": picky.name, "reason": "untargeted"} in explanation["filtered"]


class _RacedLedger:
    """The memory ledger, but another request spends the first planned campaign's whole budget between
    this decision's snapshot and its reservations (what concurrent decisions on other processes do)."""

    def __init__(self, inner: Any, victim: int) -> None:
        self.inner, self.victim, self.batches = inner, victim, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def impressions_reserve(self, *, charges: Any, user_id: str, now: float) -> list[str]:
        self.batches.append([c.campaign_id for c in charges])
        for charge in charges:
            if charge.campaign_id == self.victim:  # the other request empties the budget first
                spent = Charge(charge.campaign_id, charge.creative_id, charge.total_budget_micros, 10**12, 10**12)
                assert self.inner.impression_reserve(charge=spent, user_id="", now=now) == "ok"
        return self.inner.impressions_reserve(charges=charges, user_id=user_id, now=now)


def test_a_page_reserved_in_one_call_refills_a_placement_lost_to_a_concurrent_request(
    make_campaign: Any, interests: Any, fresh_ads_state: Any
) -> None:
    from adsite.platform import platform

    best = make_campaign(advertiser="Acme", pricing=Campaign.Pricing.CPM, bid=Decimal("900"), total_budget=Decimal("50"))
    acme_second = make_campaign(advertiser="Acme", pricing=Campaign.Pricing.CPM, bid=Decimal("800"))
    other = make_campaign(advertiser="Globex", pricing=Campaign.Pricing.CPM, bid=Decimal("700"))
    raced = _RacedLedger(fresh_ads_state, victim=best.id)
    platform().ledger_backend = raced  # the test's own platform (fresh_platform), dropped afterwards
    decision = ads_select(user_id="u", placements=[PlacementRequest("sidebar"), PlacementRequest("footer")])
    # both placements were reserved in one ledger call; the first lost its campaign to the other request,
    # so it was filled again one reservation at a time: Acme's next campaign (Acme is no longer on the page)
    assert raced.batches == [[best.id, other.id]]
    assert shown(decision) == [acme_second.id, other.id]
    assert decision.filtered == {"out_of_budget": 1}
    now = time.time()
    assert fresh_ads_state.spend(campaign_id=best.id, now=now)[0] == 50_000_000  # only the other request's spend
    assert fresh_ads_state.spend(campaign_id=acme_second.id, now=now)[0] == 800_000  # CPM 800: 0.80 per impression
