"""Wear-out of repeated ads: how much less a visitor clicks a campaign seen before today is learned from the
ledger's repeat statistics (clicks over the click model's expectation, per repeat bucket), and the
selector expects a repeat to be clicked that much less; each served impression and its click are counted
under the bucket its token carries."""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any

import pytest

from adsite.ads.accounting import NO_REPEAT, REPEAT_BUCKETS, Charge, MemoryLedger, Snapshot
from adsite.ads.decisions import DecisionContext, PlacementRequest, ads_select
from adsite.ads.delivery import choice_urls
from adsite.ads.scoring import Knobs, wear_out_factors
from adsite.ads.tokens import AdToken, token_make, token_read

from .conftest import browser

SIDEBAR = [PlacementRequest("sidebar")]


def snapshot_of(expected: list[float], clicks: list[int]) -> Snapshot:
    """A snapshot whose repeat statistics are ``expected`` clicks (as the click model expected them) and
    ``clicks`` (observed), bucket by bucket."""
    return dataclasses.replace(
        Snapshot.empty(),
        repeat_expected={b: round(e * 1_000_000) for b, e in enumerate(expected)},
        repeat_clicks=dict(enumerate(clicks)),
    )


def test_no_evidence_means_no_wear_out() -> None:
    assert wear_out_factors(Snapshot.empty(), Knobs.read()) == (1.0, 1.0, 1.0, 1.0)


def test_repeats_clicked_less_than_expected_are_discounted_relative_to_first_impressions() -> None:
    # first impressions clicked at 1.5x what the click model expected, repeats at 0.75x, 0.6x, 0.45x: the
    # click model's own scale cancels, the repeats' wear-out relative to a first remains (0.5, 0.4, 0.3)
    factors = wear_out_factors(snapshot_of([2000, 1000, 800, 600], [3000, 750, 480, 270]), Knobs.read())
    assert factors[0] == 1.0
    assert factors[1] == pytest.approx(0.5, abs=0.02)
    assert factors[2] == pytest.approx(0.4, abs=0.02)
    assert factors[3] == pytest.approx(0.3, abs=0.02)


def test_a_few_clicks_barely_move_the_prior_and_a_repeat_never_beats_a_first() -> None:
    knobs = Knobs.read()
    few = wear_out_factors(snapshot_of([10, 6, 0, 0], [10, 1, 0, 0]), knobs)
    assert 0.75 < few[1] < 1.0  # 1 click where 6 were expected: weak evidence against a prior of 20 clicks
    # repeats clicked more than firsts (targeting shows a campaign again to those most interested in it)
    assert wear_out_factors(snapshot_of([500, 500, 500, 500], [500, 900, 300, 800]), knobs) == pytest.approx(
        (1.0, 1.0, 0.6, 0.6), abs=0.03
    )  # capped at 1, and never above the bucket before
    assert wear_out_factors(snapshot_of([500, 500, 0, 0], [500, 100, 0, 0]), dataclasses.replace(knobs, wear_out=False)) == (
        1.0, 1.0, 1.0, 1.0,
    )


def _learned_wear_out(ledger: MemoryLedger, creatives: list[int]) -> None:
    """History: each creative well known (2% clicks) and a second impression clicked at a third of a first's
    rate (against the click model's expectation), so the learned factor is about 0.39."""
    for creative in creatives:
        ledger.statistics_add(
            creative_id=creative, impressions=2000, clicks=40, extra_exposure_micros=0,
            repeat_expected=[100_000_000, 100_000_000, 0, 0], repeat_clicks=[150, 50, 0, 0],
        )


def _share_of_seen(seen: Any, other: Any, ledger: MemoryLedger, *, returning: bool, rng: random.Random) -> int:
    """Of 200 visitors (each one decision), how many got ``seen``; returning ones saw it once today before."""
    count = 0
    for i in range(200):
        user = f"{'returning' if returning else 'newcomer'}-{i}-{rng.random()}"
        if returning:
            charge = Charge(seen.id, seen.creatives.get().id, 0, 10**9, 10**9)
            ledger.impression_reserve(charge=charge, user_id=user, now=time.time())
        decision = ads_select(user_id=user, placements=SIDEBAR, context=DecisionContext(rng=rng))
        count += decision.choices[0].campaign.id == seen.id
    return count


@pytest.mark.django_db
def test_a_visitor_who_saw_a_campaign_today_is_mostly_shown_the_other_one(
    make_campaign: Any, interests: Any, fresh_ads_state: MemoryLedger, settings: Any
) -> None:
    seen, other = make_campaign(advertiser="Seen"), make_campaign(advertiser="Other")
    _learned_wear_out(fresh_ads_state, [seen.creatives.get().id, other.creatives.get().id])
    rng = random.Random(5)
    assert 60 <= _share_of_seen(seen, other, fresh_ads_state, returning=False, rng=rng) <= 140  # equal creatives
    assert _share_of_seen(seen, other, fresh_ads_state, returning=True, rng=rng) <= 30
    # why: the explanation and the reason name the repeat and its factor
    user = "explained"
    fresh_ads_state.impression_reserve(charge=Charge(seen.id, seen.creatives.get().id, 0, 10**9, 10**9), user_id=user,
                                       now=time.time())
    explained = ads_select(user_id=user, placements=SIDEBAR, context=DecisionContext(rng=rng, explain=True))
    row = next(c for c in explained.explanation["candidates"] if c["campaign_id"] == seen.id)
    assert row["repeat"] == 1 and row["wear_out"] == pytest.approx(0.39, abs=0.02)
    # switched off, a returning visitor is expected to click as a first-time one does
    settings.ADS = {**settings.ADS, "WEAR_OUT": False}
    assert 60 <= _share_of_seen(seen, other, fresh_ads_state, returning=True, rng=rng) <= 140


@pytest.mark.django_db
def test_a_served_ad_and_its_click_are_counted_under_the_impressions_repeat_bucket(
    make_campaign: Any, interests: Any, fresh_ads_state: MemoryLedger
) -> None:
    campaign = make_campaign()
    creative = campaign.creatives.get().id
    tokens = []
    for _ in range(3):  # the visitor's 1st, 2nd and 3rd impression of the campaign today
        choice = ads_select(user_id="visitor", placements=SIDEBAR).choices[0]
        click, _ = choice_urls(choice=choice, user_id="visitor")
        tokens.append(click)
    assert [token_read(url.split("/")[-1], max_age_s=60)[1].repeat for url in tokens] == [0, 1, 2]
    expected, clicks = fresh_ads_state.repeat_statistics(creative_id=creative)
    assert all(e > 0 for e in expected[:3]) and expected[3] == 0  # each impression's expectation, in its bucket
    assert clicks == [0, 0, 0, 0]
    assert browser("visitor").get(tokens[1]).status_code == 302  # the visitor clicks the second one
    assert fresh_ads_state.repeat_statistics(creative_id=creative)[1] == [0, 1, 0, 0]
    assert browser("visitor").get(tokens[1]).status_code == 302  # a replay counts nothing
    assert fresh_ads_state.repeat_statistics(creative_id=creative)[1] == [0, 1, 0, 0]
    # a visitor who is not tracked has no repeat bucket: nothing is counted for the repeat statistics
    anonymous = ads_select(user_id="", placements=SIDEBAR, context=DecisionContext(personalized=False)).choices[0]
    click, _ = choice_urls(choice=anonymous, user_id="", binding="b" * 16)
    assert token_read(click.split("/")[-1], max_age_s=60)[1].repeat == NO_REPEAT


def test_a_token_carrying_a_bucket_the_server_never_writes_reads_as_not_known() -> None:
    """A signed token's bucket outside 0..REPEAT_BUCKETS - 1 (a token from a build with more buckets, or a
    server bug) must not count a click in a bucket the statistics do not have."""
    made = {b: token_make(token=AdToken("s", 1, 2, "sidebar", "v", repeat=b))
            for b in (NO_REPEAT, 0, REPEAT_BUCKETS - 1, REPEAT_BUCKETS, 15)}
    assert {b: token_read(t, max_age_s=60)[1].repeat for b, t in made.items()} == {
        NO_REPEAT: NO_REPEAT, 0: 0, REPEAT_BUCKETS - 1: REPEAT_BUCKETS - 1, REPEAT_BUCKETS: NO_REPEAT, 15: NO_REPEAT}


def test_both_ledgers_count_repeats_and_their_clicks_per_bucket(each_ledger: Any) -> None:
    """The reservation counts an impression's expected clicks in its bucket (one Redis: the page's one script;
    a Redis Cluster: the steps), a click counts in the bucket its token carried, a replay nowhere; a
    snapshot sums the buckets over the creatives it names."""
    from adsite.ads.accounting import BILLED, OK, REPLAYED

    ledger = each_ledger
    now = time.time()
    page = [Charge(1, 10, 0, 10**9, 10**9, repeat=0, expected_micros=20_000),
            Charge(2, 20, 0, 10**9, 10**9, repeat=3, expected_micros=50_000),
            Charge(3, 30, 0, 10**9, 10**9)]  # no bucket (an untracked visitor): not counted
    assert ledger.impressions_reserve(charges=page, user_id="v", now=now) == [OK, OK, OK]
    assert ledger.impression_reserve(charge=Charge(1, 10, 0, 10**9, 10**9, repeat=1, expected_micros=7_000),
                                     user_id="v", now=now) == OK
    click = {"campaign_id": 2, "creative_id": 20, "price_micros": 100, "daily_budget_micros": 10**9,
             "total_budget_micros": 10**9, "now": now, "token_ttl_s": 60}
    assert ledger.click_charge(token_id="a", repeat=3, **click) == BILLED
    assert ledger.click_charge(token_id="a", repeat=3, **click) == REPLAYED
    assert ledger.click_charge(token_id="b", **click) == BILLED  # a token without a bucket
    snap = ledger.snapshot(campaign_ids=[1, 2, 3], creative_ids=[10, 20, 30], user_id="v", now=now)
    assert snap.repeat_expected == {0: 20_000, 1: 7_000, 2: 0, 3: 50_000}
    assert snap.repeat_clicks == {0: 0, 1: 0, 2: 0, 3: 1}
    assert snap.clicks[20] == 2  # both genuine clicks count for the creative
    only = ledger.snapshot(campaign_ids=[1], creative_ids=[10], user_id="", now=now)
    assert only.repeat_expected == {0: 20_000, 1: 7_000, 2: 0, 3: 0}
