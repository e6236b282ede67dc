"""Ads chosen on the device (edge mode), the server's side: offers made from context only, the chosen
offer reserved and billed like any served impression, the invalid-traffic rules unchanged, and the
per-creative edge statistics reported only past the minimum audience."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.core import signing
from django.test import Client

from adsite.ads.accounting import MemoryLedger
from adsite.ads.edge import edge_offers
from adsite.ads.models import AdClick
from adsite.ads.selectors import ads_report, edge_delivery
from tests.ads.conftest import BROWSER_UA, CampaignFactory, browser

pytestmark = pytest.mark.django_db

OTHER_UA = BROWSER_UA.replace("Chrome/124.0", "Chrome/125.0")


def _offers(client: Client, placements: str = "sidebar,footer") -> dict[str, Any]:
    response = client.get("/edge/ads", {"placements": placements})
    assert response.status_code == 200, response.content
    return response.json()


def _serve(client: Client, offers: list[str]) -> list[dict[str, Any]]:
    response = client.post("/edge/ads/serve", json.dumps({"offers": offers}), content_type="text/plain")
    assert response.status_code == 200, response.content
    return response.json()["served"]


def _campaign_row(campaign_id: int) -> dict[str, Any]:
    return next(row for row in ads_report()["campaigns"] if row["id"] == campaign_id)


def test_offers_name_no_visitor_and_reserve_nothing(make_campaign: CampaignFactory) -> None:
    sports = make_campaign(interests={"sports": 1.0}, pricing="cpm", bid=Decimal("2.00"))
    answer = _offers(browser("visitor-1"))

    assert [p["name"] for p in answer["placements"]] == ["sidebar", "footer"]
    offered = {(o["creative_id"], o["placement"]) for o in answer["offers"]}
    creative_id = sports.creatives.get().id
    assert offered == {(creative_id, "sidebar"), (creative_id, "footer")}
    offer = answer["offers"][0]
    assert offer["interests"] == [["sports", 1.0]] and offer["tier_rank"] == 1 and offer["quality"] > 0
    # nothing in the answer is about the visitor, and an offer is not an impression
    assert "visitor-1" not in json.dumps(answer)
    assert _campaign_row(sports.id)["impressions_served"] == 0


def test_a_chosen_offer_is_reserved_billed_and_counted_once(make_campaign: CampaignFactory) -> None:
    cpm = make_campaign(interests={"sports": 1.0}, pricing="cpm", bid=Decimal("2.00"))
    cpc = make_campaign(interests={"travel": 1.0}, pricing="cpc", bid=Decimal("0.50"))
    client = browser("")
    answer = _offers(client)
    by_campaign = {(o["campaign_id"], o["placement"]): o["offer"] for o in answer["offers"]}

    served = _serve(client, [by_campaign[(cpm.id, "sidebar")], by_campaign[(cpc.id, "footer")]])

    assert [s["outcome"] for s in served] == ["ok", "ok"]
    assert [s["placement"] for s in served] == ["sidebar", "footer"]
    assert _campaign_row(cpm.id)["impressions_served"] == 1 and _campaign_row(cpm.id)["spend"] == "0.002000"
    # the viewable impression through the signed link: counted once; a replay is invalid traffic
    assert client.get(served[0]["impression_url"]).status_code == 204
    client.get(served[0]["impression_url"])
    row = _campaign_row(cpm.id)
    assert row["impressions_viewable"] == 1 and row["impressions_invalid"]["replay"] == 1
    # the click through the signed link: billed once (CPC), to the creative's own landing page
    response = client.get(served[1]["click_url"])
    assert response.status_code == 302 and response["Location"].startswith("https://advertiser2.example/")
    client.get(served[1]["click_url"])
    assert list(AdClick.objects.order_by("id").values_list("outcome", flat=True)) == ["billed", "replay"]
    assert _campaign_row(cpc.id)["clicks_billed"] == 1 and _campaign_row(cpc.id)["spend"] == "0.500000"


def test_another_browser_cannot_use_the_chosen_ads_links(make_campaign: CampaignFactory) -> None:
    campaign = make_campaign(pricing="cpc", bid=Decimal("0.50"))
    visitor = browser("")
    served = _serve(visitor, [_offers(visitor, "sidebar")["offers"][0]["offer"]])[0]

    stranger = Client(HTTP_USER_AGENT=OTHER_UA)
    stranger.get(served["impression_url"])
    stranger.get(served["click_url"])

    row = _campaign_row(campaign.id)
    assert row["impressions_viewable"] == 0 and row["impressions_invalid"]["wrong_visitor"] == 1
    assert row["clicks_billed"] == 0 and row["clicks_invalid"]["wrong_visitor"] == 1


def test_forged_expired_and_bot_choices_are_refused(make_campaign: CampaignFactory, settings: Any) -> None:
    campaign = make_campaign(pricing="cpm", bid=Decimal("2.00"))
    creative_id = campaign.creatives.get().id
    client = browser("")
    forged = signing.dumps({"c": creative_id, "k": campaign.id, "p": "sidebar"}, salt="another.salt")

    assert [s["outcome"] for s in _serve(client, [forged])] == ["invalid_offer"]
    assert ads_report()["totals"]["impressions_invalid"]["unknown_serve"] == 1

    offer = _offers(client, "sidebar")["offers"][0]["offer"]
    settings.ADS = {**settings.ADS, "EDGE_OFFER_MAX_AGE_S": -1}
    assert [s["outcome"] for s in _serve(client, [offer])] == ["expired_offer"]
    settings.ADS = {**settings.ADS, "EDGE_OFFER_MAX_AGE_S": 600}

    bot = Client(HTTP_USER_AGENT="python-requests/2.32")
    assert [s["outcome"] for s in _serve(bot, [offer])] == ["bot"]
    assert ads_report()["totals"]["impressions_invalid"]["bot"] == 1
    assert _campaign_row(campaign.id)["impressions_served"] == 0  # none of the three reserved anything


def test_a_choice_past_its_budget_is_refused(make_campaign: CampaignFactory, fresh_ads_state: MemoryLedger) -> None:
    campaign = make_campaign(pricing="cpm", bid=Decimal("1000.00"), total_budget=Decimal("1.00"))
    client = browser("")
    offer = _offers(client, "sidebar")["offers"][0]["offer"]

    assert [s["outcome"] for s in _serve(client, [offer])] == ["ok"]
    assert [s["outcome"] for s in _serve(client, [offer])] == ["out_of_budget"]
    assert _campaign_row(campaign.id)["spend"] == "1.000000"
    # and once spent, it is no longer offered
    assert _offers(client, "sidebar")["offers"] == []


def test_bad_requests_get_a_clear_error(make_campaign: CampaignFactory) -> None:
    make_campaign()
    client = browser("")
    assert client.get("/edge/ads").status_code == 400
    unknown = client.get("/edge/ads", {"placements": "sidebar,nowhere"})
    assert unknown.status_code == 400 and "nowhere" in unknown.json()["errors"]["placements"]
    for body in ("not json", json.dumps({"offers": "x"}), json.dumps({"offers": []}), json.dumps({"offers": [1]})):
        response = client.post("/edge/ads/serve", body, content_type="text/plain")
        assert response.status_code == 400 and "offers" in response.json()["errors"]


def test_edge_statistics_are_reported_past_the_minimum_audience_only(
    make_campaign: CampaignFactory, settings: Any
) -> None:
    settings.ADS = {**settings.ADS, "EDGE_MIN_AUDIENCE": 3}
    campaign = make_campaign(pricing="cpm", bid=Decimal("2.00"))
    creative_id = campaign.creatives.get().id
    client = browser("")
    offer = _offers(client, "sidebar")["offers"][0]["offer"]
    links = [_serve(client, [offer])[0] for _ in range(2)]
    client.get(links[0]["impression_url"])

    (row,) = edge_delivery()
    assert (row.creative_id, row.reported, row.served, row.viewable) == (creative_id, False, None, None)
    assert ads_report()["chosen_on_device"][0]["served"] is None
    # billing is not held back: the invoice's counters hold every impression
    assert _campaign_row(campaign.id)["impressions_served"] == 2

    _serve(client, [offer])
    (row,) = edge_delivery()
    assert (row.reported, row.served, row.viewable, row.clicks) == (True, 3, 1, 0)


def test_an_edge_visitors_page_reserves_nothing(make_campaign: CampaignFactory, settings: Any) -> None:
    from adsite.content.services import demo_content_seed

    settings.TRACKING = {**settings.TRACKING, "EDGE_MODE": "all"}
    campaign = make_campaign(pricing="cpm", bid=Decimal("2.00"))
    demo_content_seed(articles_per_category=1)
    page = browser("visitor-1").get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-click-recorded="server"' not in html  # house ads until the browser has chosen
    assert _campaign_row(campaign.id)["impressions_served"] == 0


def test_offers_follow_the_servers_eligibility(make_campaign: CampaignFactory) -> None:
    from adsite.ads.models import Campaign

    live = make_campaign(pricing="cpm", bid=Decimal("2.00"))
    make_campaign(pricing="cpm", bid=Decimal("2.00"), devices=["mobile"])
    make_campaign(pricing="cpm", bid=Decimal("2.00"), status=Campaign.Status.PAUSED)
    offered = {o.campaign_id for o in edge_offers(placements=["sidebar"], device="desktop").offers}
    assert offered == {live.id}
