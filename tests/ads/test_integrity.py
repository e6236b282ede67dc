"""Ad integrity, written as the attacks: none of them moves money, statistics or counters.

Each test plays an attacker with nothing but HTTP (a script following ``/c/`` links without cookies, a
crawler, a forged impression flood, a garbage-token flood, another visitor's links) and asserts that
spend, the creatives' statistics and the invoiced counters did not move, and that the refusal was
recorded with its reason.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from adsite.ads.catalog import catalog_invalidate
from adsite.ads.models import AdClick, Campaign
from adsite.ads.tokens import CLICK_SALT, AdToken, token_make
from adsite.content.services import demo_content_seed

from .conftest import BROWSER_UA, browser

pytestmark = pytest.mark.django_db

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
CLICK_LINK = re.compile(r'href="(/c/[^"]+)"')
SLOT = re.compile(r'<div class="ad-slot[^"]*"([^>]*)>')


@pytest.fixture
def site(make_campaign: Any, interests: Any) -> Campaign:
    demo_content_seed(articles_per_category=1, seed=1)
    return make_campaign(advertiser="Trailhead", bid=Decimal("0.50"))


def slot_attrs(html: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'(data-[\w-]+)="([^"]*)"', m.group(1))) for m in SLOT.finditer(html)]


def money_and_stats(ledger: Any, campaign: Campaign) -> tuple[Any, ...]:
    creative = campaign.creatives.get()
    stats = ledger.creative_stats(creative_id=creative.id)
    return ledger.spend(campaign_id=campaign.id, now=time.time()), stats.clicks, stats.viewable


def report(ledger: Any) -> dict[str, int]:
    return ledger.report_read(since=None, now=time.time())


def test_a_script_following_click_links_without_cookies_is_never_billed(site: Campaign, fresh_ads_state: Any) -> None:
    links = []
    for _ in range(5):  # the script fetches pages (each answer mints a new visitor id it throws away)...
        html = Client(HTTP_USER_AGENT=BROWSER_UA).get("/about/").content.decode()
        links += CLICK_LINK.findall(html)
    assert links
    before = money_and_stats(fresh_ads_state, site)
    for link in links:  # ... and follows every fresh link without cookies
        assert Client(HTTP_USER_AGENT=BROWSER_UA).get(link).status_code == 302
    assert money_and_stats(fresh_ads_state, site) == before == ((0, 0), 0, 0)
    assert set(AdClick.objects.values_list("outcome", flat=True)) == {"wrong_visitor"}
    assert report(fresh_ads_state)[f"{site.id}:ivc.wrong_visitor"] == len(links)
    assert f"{site.id}:clk_billed" not in report(fresh_ads_state)


def test_the_visitor_it_was_served_to_is_billed_once(site: Campaign, fresh_ads_state: Any) -> None:
    reader = browser("reader-1")
    link = CLICK_LINK.search(reader.get("/about/").content.decode()).group(1)
    assert reader.get(link).status_code == 302
    assert reader.get(link).status_code == 302  # the same link again: a replay
    assert browser("reader-2").get(link).status_code == 302  # shared with someone else
    assert fresh_ads_state.spend(campaign_id=site.id, now=time.time())[0] == 500_000
    assert list(AdClick.objects.order_by("id").values_list("outcome", flat=True)) == ["billed", "replay", "wrong_visitor"]
    counters = report(fresh_ads_state)
    assert counters[f"{site.id}:clk_billed"] == 1 and counters[f"{site.id}:spend"] == 500_000
    assert counters[f"{site.id}:ivc.replay"] == 1 and counters[f"{site.id}:ivc.wrong_visitor"] == 1


def test_a_visitor_without_personalisation_is_bound_by_address_and_user_agent(site: Campaign, fresh_ads_state: Any) -> None:
    """Do Not Track: no visitor id in the link; the click must come from the address and browser it was
    served to."""
    reader = Client(HTTP_USER_AGENT=BROWSER_UA, HTTP_DNT="1", REMOTE_ADDR="198.51.100.7")
    link = CLICK_LINK.search(reader.get("/about/").content.decode()).group(1)
    other = Client(HTTP_USER_AGENT=BROWSER_UA + " Edg/124.0", HTTP_DNT="1", REMOTE_ADDR="198.51.100.7")
    elsewhere = Client(HTTP_USER_AGENT=BROWSER_UA, HTTP_DNT="1", REMOTE_ADDR="203.0.113.9")
    other.get(link)
    elsewhere.get(link)
    assert fresh_ads_state.spend(campaign_id=site.id, now=time.time())[0] == 0
    # the same /24 and browser: the visitor it was served to
    Client(HTTP_USER_AGENT=BROWSER_UA, HTTP_DNT="1", REMOTE_ADDR="198.51.100.99").get(link)
    assert fresh_ads_state.spend(campaign_id=site.id, now=time.time())[0] == 500_000
    assert list(AdClick.objects.order_by("id").values_list("outcome", flat=True)) == ["wrong_visitor", "wrong_visitor", "billed"]


def test_a_crawler_gets_no_paid_ads_and_is_never_billed(site: Campaign, fresh_ads_state: Any) -> None:
    crawler = Client(HTTP_USER_AGENT=GOOGLEBOT)
    slots = 0
    for path in ("/", "/about/", "/about/"):
        html = crawler.get(path).content.decode()
        attrs = slot_attrs(html)
        slots += len(attrs)
        assert all(a.get("data-creative-id") != str(site.creatives.get().id) for a in attrs)
        assert not CLICK_LINK.search(html)
    assert fresh_ads_state.creative_stats(creative_id=site.creatives.get().id).impressions == 0
    # a link a person was served, fetched by the crawler
    link = CLICK_LINK.search(browser("reader").get("/about/").content.decode()).group(1)
    before = money_and_stats(fresh_ads_state, site)
    crawler.get(link)
    assert money_and_stats(fresh_ads_state, site) == before
    counters = report(fresh_ads_state)
    assert counters["0:ivi.bot"] == slots and counters[f"{site.id}:ivc.bot"] == 1
    assert AdClick.objects.get().outcome == "bot"


def test_a_forged_impression_flood_leaves_the_statistics_bounded(site: Campaign, fresh_ads_state: Any) -> None:
    rng = random.Random(7)
    flood = [
        {
            "event_id": str(uuid.uuid4()), "type": "ad_impression", "ts": int(time.time() * 1000),
            "ad": {"creative_id": str(rng.randrange(1, 10**12)), "campaign_id": "1", "placement": "sidebar",
                   "serve_id": f"{uuid.uuid4().hex[:16]}.abc.{uuid.uuid4().hex[:22]}"},
        }
        for _ in range(1500)
    ]
    real = site.creatives.get()
    # a real creative named without a serve id the server issued: no viewable impression either
    flood += [
        {"event_id": str(uuid.uuid4()), "type": "ad_impression", "ts": int(time.time() * 1000),
         "ad": {"creative_id": str(real.id), "campaign_id": str(site.id), "placement": "sidebar"}}
        for _ in range(20)
    ]
    attacker = browser("attacker")
    for start in range(0, len(flood), 500):
        response = attacker.post("/collect", json.dumps({"events": flood[start : start + 500]}), content_type="text/plain")
        assert response.status_code == 202
    assert fresh_ads_state.creative_stats(creative_id=real.id).viewable == 0
    # nothing the decisions read grew: no creative statistics keys beyond the catalog's
    assert fresh_ads_state.creatives_counted() == set()
    counters = report(fresh_ads_state)
    assert counters == {"0:ivi.unknown_serve": 1500, f"{site.id}:ivi.unknown_serve": 20}


def test_an_impression_url_counts_only_for_the_visitor_it_was_served_to(site: Campaign, fresh_ads_state: Any) -> None:
    reader = browser("reader")
    html = reader.get("/about/").content.decode()
    url = next(a["data-impression-url"] for a in slot_attrs(html) if a.get("data-creative-id") == str(site.creatives.get().id))
    browser("someone-else").get(url)
    Client(HTTP_USER_AGENT=GOOGLEBOT).get(url)
    assert fresh_ads_state.creative_stats(creative_id=site.creatives.get().id).viewable == 0
    reader.get(url)
    reader.get(url)
    assert fresh_ads_state.creative_stats(creative_id=site.creatives.get().id).viewable == 1
    counters = report(fresh_ads_state)
    assert counters[f"{site.id}:viewable"] == 1
    assert (counters[f"{site.id}:ivi.wrong_visitor"], counters[f"{site.id}:ivi.bot"], counters[f"{site.id}:ivi.replay"]) == (1, 1, 1)


def test_a_garbage_click_flood_is_rate_limited_and_writes_no_rows(site: Campaign, fresh_ads_state: Any, settings: Any) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "SCOPES": {"click": (50, 1000)}}
    before = REGISTRY.get_sample_value("http_rate_limited_total", {"scope": "click", "key": "ip"}) or 0.0
    script = Client(HTTP_USER_AGENT=BROWSER_UA)
    answers = [script.get(f"/c/garbage-{n}") for n in range(80)]
    assert [a.status_code for a in answers] == [302] * 50 + [429] * 30
    assert 1 <= int(answers[-1]["Retry-After"]) <= 60
    assert not AdClick.objects.exists()
    counters = report(fresh_ads_state)
    assert counters == {"0:ivc.unknown_serve": 50, "0:ivc.rate": 30}
    after = REGISTRY.get_sample_value("http_rate_limited_total", {"scope": "click", "key": "ip"})
    assert after == before + 30


def test_one_visitor_is_limited_before_their_address_is(site: Campaign, settings: Any) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "SCOPES": {"page": (1000, 3)}}
    reader = browser("busy-reader")
    assert [reader.get("/about/").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert browser("another-reader").get("/about/").status_code == 200  # same address, another visitor


def test_click_links_survive_a_secret_key_rotation(site: Campaign, fresh_ads_state: Any, settings: Any) -> None:
    reader = browser("reader")
    link = CLICK_LINK.search(reader.get("/about/").content.decode()).group(1)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-key-" + "x" * 50
    assert reader.get(link).status_code == 302
    assert AdClick.objects.get().outcome == "billed"


def test_a_link_signed_with_an_unknown_key_is_refused(site: Campaign, fresh_ads_state: Any, settings: Any) -> None:
    creative = site.creatives.get()
    settings.SECRET_KEY = "the-public-default-" + "y" * 40  # what an attacker could sign with
    forged = token_make(token=AdToken("s", creative.id, site.id, "sidebar", "reader"), salt=CLICK_SALT)
    settings.SECRET_KEY = "the-real-secret-" + "z" * 40
    browser("reader").get(f"/c/{forged}")
    assert fresh_ads_state.spend(campaign_id=site.id, now=time.time())[0] == 0
    assert not AdClick.objects.exists()


def test_the_demo_path_still_bills(site: Campaign, fresh_ads_state: Any) -> None:
    """A person browsing with the cookie: served, viewable and clicked through the real paths, billed."""
    reader = browser("reader-9")
    html = reader.get("/about/").content.decode()
    attrs = next(a for a in slot_attrs(html) if a.get("data-creative-id") == str(site.creatives.get().id))
    event = {
        "event_id": str(uuid.uuid4()), "type": "ad_impression", "user_id": "reader-9", "ts": int(time.time() * 1000),
        "ad": {"creative_id": attrs["data-creative-id"], "campaign_id": attrs["data-campaign-id"],
               "placement": attrs["data-placement"], "serve_id": attrs["data-serve-id"]},
    }
    assert reader.post("/collect", json.dumps({"events": [event]}), content_type="text/plain").json()["accepted"] == 1
    reader.get(CLICK_LINK.search(html).group(1))
    counters = report(fresh_ads_state)
    assert counters[f"{site.id}:served"] == 1 and counters[f"{site.id}:viewable"] == 1
    assert counters[f"{site.id}:clk_billed"] == 1
    catalog_invalidate()


def test_click_rows_are_kept_only_for_the_retention_period(site: Campaign) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from adsite.ads.tasks import purge_clicks

    old = AdClick.objects.create(outcome="wrong_visitor", campaign_id=site.id)
    recent = AdClick.objects.create(outcome="billed", campaign_id=site.id)
    AdClick.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(days=400))
    assert purge_clicks.apply().get() == {"clicks": 1}
    assert list(AdClick.objects.values_list("id", flat=True)) == [recent.id]
