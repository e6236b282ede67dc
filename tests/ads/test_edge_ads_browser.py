"""Ads chosen on the device, in Debian's Chromium (Playwright) against a live server: with edge mode on,
a visitor reads one section's articles; no clickstream leaves the browser (the network log holds page
loads, the model file, the placements' offers asked for with context only, and the chosen offers), yet
the ads shown follow what the visitor read (a sports reader gets the sports advertiser's ad, a film
reader the cinema's), and the chosen ad's viewable impression and click are counted and billed through
the signed links like any other ad's. And the browser's ranking (edge-ads.js) makes, on the same offers
and interests, the choices ``ads_select`` makes."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from adsite.ads.catalog import catalog_invalidate
from adsite.ads.decisions import DecisionContext, PlacementRequest, ads_select
from adsite.ads.edge import edge_offers
from adsite.ads.models import AdClick, Placement
from adsite.ads.scoring import bid_value
from adsite.ads.selectors import ads_report, edge_delivery
from adsite.content.models import Article
from adsite.content.services import demo_content_seed
from tests.ads.conftest import CampaignFactory
from tests.browser.test_edge_mode import edge_site  # noqa: F401
from tests.browser.test_tracker import _dwell_on, _wait_until, browser, fast_tracker  # noqa: F401

pytestmark = pytest.mark.browser

SECTIONS = ("sports", "movies", "travel")
READER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


@pytest.fixture
def article(live_server: Any) -> Article:
    demo_content_seed(articles_per_category=4)
    return Article.objects.order_by("slug").first()


@pytest.fixture
def campaigns(
    live_server: Any, make_campaign: CampaignFactory, edge_site: dict[str, list[Article]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, int]:
    """One CPC campaign per section, alike but for its interest targeting, landing on the live server.

    Alike in quality too: each creative's Thompson draw is its posterior mean here. New creatives' draws
    from the prior spread over an order of magnitude (Gamma of shape 1), so one in a few pages a draw
    outweighed the interest lift these tests are about, and the wrong section's ad came first."""
    from adsite.ads.scoring import Quality

    monkeypatch.setattr(Quality, "sample", lambda self, rng: self.mean)
    for name, size in (("leaderboard", "728x90"), ("sidebar", "300x250"), ("footer", "728x90")):
        Placement.objects.get_or_create(name=name, defaults={"size": size})
    out = {}
    for section in SECTIONS:
        campaign = make_campaign(
            advertiser=f"{section.title()} Co", interests={section: 1.0}, pricing="cpc", bid=Decimal("0.50"),
        )
        campaign.creatives.update(headline=f"The {section} offer", landing_url=f"{live_server.url}/about/?c={section}")
        out[section] = campaign.id
    catalog_invalidate()
    return out


def _ads_on(page: Any, url: str) -> list[dict[str, Any]]:
    """Open ``url`` and wait for the ads chosen on the device ([{placement, creative_id, campaign_id}])."""
    page.goto(url)
    _wait_until(lambda: page.evaluate("window.adsiteTracker.edge.ads !== null"), page)
    return page.evaluate("window.adsiteTracker.edge.ads")


def _campaign_row(campaign_id: int) -> dict[str, Any]:
    return next(row for row in ads_report()["campaigns"] if row["id"] == campaign_id)


def test_edge_visitors_ads_follow_their_interests_without_a_clickstream_and_are_billed(
    browser: Any, live_server: Any, edge_site: dict[str, list[Article]], campaigns: dict[str, int]  # noqa: F811
) -> None:
    from tracking.models import Event

    by_campaign = {campaign_id: section for section, campaign_id in campaigns.items()}
    chosen = {}
    viewable_before: dict[str, int] = {}
    shown = 0  # ads chosen on the device and shown, over every page either visitor opened
    for section in ("sports", "movies"):
        # a reader's Chrome: the headless one says "HeadlessChrome", which tracking rightly treats as a bot
        context = browser.new_context(viewport={"width": 1280, "height": 800}, user_agent=READER_UA)
        page = context.new_page()
        requests: list[Any] = []
        page.on("request", lambda request, log=requests: log.append(request))
        for item in edge_site[section][:3]:
            shown += len(_ads_on(page, f"{live_server.url}/article/{item.slug}/"))
            _dwell_on(page, "body", ms=200)
        # read before the home page: its leaderboard may be counted viewable while the checks below run
        viewable_before[section] = _campaign_row(campaigns[section])["impressions_viewable"]
        ads = _ads_on(page, f"{live_server.url}/")
        shown += len(ads)

        # the ads follow what this visitor read: the first slot is their section's advertiser
        assert ads and ads[0]["placement"] == "leaderboard", ads
        assert by_campaign[ads[0]["campaign_id"]] == section, ads
        slot = page.locator(".ad-slot[data-placement='leaderboard']")
        assert f"The {section} offer" in slot.inner_text()
        chosen[section] = (page, ads, requests)

        # the network log: no clickstream; what went out is the context and the chosen offers only
        assert not [r.url for r in requests if "/collect" in r.url]
        posts = [r for r in requests if r.method != "GET"]
        assert posts and all(urlsplit(r.url).path == "/edge/ads/serve" for r in posts)
        for post in posts:
            body = json.loads(post.post_data or "{}")
            assert set(body) == {"offers"} and all(isinstance(o, str) for o in body["offers"])
        asked = [r for r in requests if urlsplit(r.url).path == "/edge/ads"]
        assert asked and all(parse_qs(urlsplit(r.url).query).keys() == {"placements"} for r in asked)
        for request in [*asked, *posts]:
            assert "cookie" not in request.all_headers()
    assert Event.objects.count() == 0

    # every ad shown was reserved (served) once, through the ledger, like a server-chosen one
    assert sum(_campaign_row(c)["impressions_served"] for c in campaigns.values()) == shown

    # the sports reader's ad on the home page: its viewable impression and its click go through the
    # signed links and are counted and billed
    page, ads, _ = chosen["sports"]
    sports = campaigns["sports"]
    _dwell_on(page, ".ad-slot[data-placement='leaderboard']", ms=1600)
    _wait_until(lambda: _campaign_row(sports)["impressions_viewable"] > viewable_before["sports"], page)
    with page.expect_navigation():
        page.locator(".ad-slot[data-placement='leaderboard'] a.ad-slot__creative").click()
    assert "/about/?c=sports" in page.url
    _wait_until(lambda: AdClick.objects.filter(campaign_id=sports).exists(), page)
    click = AdClick.objects.get(campaign_id=sports)
    assert (click.outcome, click.price_micros, click.user_id) == ("billed", 500_000, "")
    after = _campaign_row(sports)
    assert after["clicks_billed"] == 1 and after["spend"] == "0.500000"
    assert sum(after["impressions_invalid"].values()) == sum(after["clicks_invalid"].values()) == 0
    # and the edge statistics of the creative: counted, held back below the minimum audience
    (edge_row,) = [row for row in edge_delivery(min_audience=1) if row.campaign_id == sports]
    assert edge_row.clicks == 1 and edge_row.viewable >= 1 and edge_row.served == after["impressions_served"]
    assert not next(row for row in edge_delivery() if row.campaign_id == sports).reported


def test_without_an_edge_model_the_page_still_gets_paid_ads(
    browser: Any, live_server: Any, campaigns: dict[str, int], settings: Any  # noqa: F811
) -> None:
    for path in (Path(settings.INFERENCE["MODEL_DIR"]) / "edge").glob("*.json"):
        path.unlink()  # nothing exported: /edge/model.json answers 404
    context = browser.new_context(viewport={"width": 1280, "height": 800}, user_agent=READER_UA)
    page = context.new_page()
    ads = _ads_on(page, f"{live_server.url}/")
    assert {ad["campaign_id"] for ad in ads} <= set(campaigns.values()) and len(ads) == 3
    assert page.locator(".ad-slot[data-edge-chosen='1']").count() == 3
    assert sum(_campaign_row(c)["impressions_served"] for c in campaigns.values()) == 3


def test_frequency_caps_are_counted_on_the_device_and_erased_with_the_profile(
    browser: Any, live_server: Any, edge_site: dict[str, list[Article]], campaigns: dict[str, int]  # noqa: F811
) -> None:
    from adsite.ads.models import Campaign

    Campaign.objects.filter(id=campaigns["sports"]).update(cap_per_day=1)
    catalog_invalidate()
    context = browser.new_context(viewport={"width": 1280, "height": 800}, user_agent=READER_UA)
    page = context.new_page()
    for item in edge_site["sports"][:3]:
        page.goto(f"{live_server.url}/article/{item.slug}/")
        _dwell_on(page, "body", ms=200)
    # the article pages showed the sports ad once (its cap); the home page then shows the others only
    first = _ads_on(page, f"{live_server.url}/")
    assert campaigns["sports"] not in {ad["campaign_id"] for ad in first} and first
    assert _campaign_row(campaigns["sports"])["impressions_served"] == 1
    # erasing the profile erases the counts too: the sports ad is back (three campaigns, three slots)
    page.evaluate("window.adsiteTracker.edge.erase()")
    again = _ads_on(page, f"{live_server.url}/")
    assert campaigns["sports"] in {ad["campaign_id"] for ad in again}


EDGE_ADS_JS = Path(__file__).resolve().parents[2] / "adsite" / "ads" / "static" / "ads" / "edge-ads.js"
TOPICS = ("sports", "movies", "travel", "pets", "science")


class FixedQuality:
    """The site's policy with each creative's quality fixed (the offers carry the same numbers), so the
    browser's ranking and ``ads_select`` can be compared choice for choice."""

    name = "fixed-quality"
    reads_quality = False

    def __init__(self, quality: dict[int, float]) -> None:
        self.quality = quality

    def click_probability(self, candidate: Any, *, quality: Any, rng: Any, knobs: Any) -> float:
        return min(1.0, self.quality[candidate.creative.id] * candidate.lift)

    def value(self, candidate: Any, p_click: float) -> float:
        return bid_value(candidate.campaign, p_click)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_browsers_ranking_makes_the_choices_ads_select_makes(
    browser: Any, make_campaign: CampaignFactory, interests: Any, seed: int  # noqa: F811
) -> None:
    rng = random.Random(seed)
    for name, size in (("leaderboard", "728x90"), ("sidebar", "300x250"), ("footer", "728x90")):
        Placement.objects.get_or_create(name=name, defaults={"size": size})
    for _ in range(12):  # tiers, pricing, sizes, shared advertisers, thresholds, untargeted campaigns
        targeted = rng.random() < 0.8
        make_campaign(
            advertiser=f"Advertiser {rng.randrange(7)}",
            tier=rng.choice(["standard"] * 4 + ["sponsorship", "house"]),
            pricing=rng.choice(["cpc", "cpm"]), bid=Decimal(str(round(rng.uniform(0.2, 3.0), 2))),
            interests={t: round(rng.uniform(0.2, 1.0), 2) for t in rng.sample(TOPICS, 2)} if targeted else {},
            interest_min_score=rng.choice([0.0, 0.0, 0.15]) if targeted else 0.0,
            size=rng.choice(["fluid", "728x90", "300x250"]), creatives=rng.choice([1, 2]),
        )
    catalog_invalidate()
    population = {t: 0.2 for t in TOPICS}
    interests.scores[""] = population
    placements = ["leaderboard", "sidebar", "footer"]
    answer = edge_offers(placements=placements, device="desktop")
    quality = {o.creative_id: round(rng.uniform(0.005, 0.05), 6) for o in answer.offers}
    offers = [{**dataclasses.asdict(o), "quality": quality[o.creative_id]} for o in answer.offers]
    exported = json.loads(json.dumps({
        "placements": [{"name": n, "size": s} for n, s in answer.placements], "offers": offers,
        "knobs": answer.knobs, "interest_top": answer.interest_top,
    }))
    page = browser.new_page()
    page.set_content("<html><body></body></html>")
    page.add_script_tag(path=str(EDGE_ADS_JS))
    for visitor in range(6):
        weights = {t: rng.random() ** 3 for t in TOPICS}
        shares = {t: w / sum(weights.values()) for t, w in weights.items()}
        interests.scores["v"] = shares
        decision = ads_select(
            user_id="v", placements=[PlacementRequest(n) for n in placements],
            context=DecisionContext(device="desktop", policy=FixedQuality(quality), now=time.time()),
        )
        server = [c.creative.id if c.creative is not None else None for c in decision.choices]
        js = page.evaluate(
            "([answer, visitor, population]) => adsiteEdgeAds.rank(answer, visitor, population, Date.now() / 1000)"
            ".map((pick) => (pick ? pick.offer.creative_id : null))",
            [exported, decision_shares(interests, "v"), decision_shares(interests, "")],
        )
        assert js == server, (seed, visitor)
    page.close()


def decision_shares(fake: Any, user_id: str) -> dict[str, float]:
    """The shares ``ads_select`` reads from the (fake) prediction: what the browser computes from its own."""
    return fake(user_id, top=40).shares()
