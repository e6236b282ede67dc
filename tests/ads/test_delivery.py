"""Delivery: ads rendered into the site's placements (tracker-compatible markup, sandboxed HTML),
the decisions API (auth, OpenAPI, explanations), viewable impressions from the tracker, and
real-time feedback from clicks to the creative's statistics and the visitor's features."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token

from adsite.ads.catalog import catalog_invalidate
from adsite.ads.models import Creative
from adsite.content.services import demo_content_seed

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
SLOT = re.compile(r'<div class="ad-slot ad-slot--(\w+)[^"]*"([^>]*)>')


@pytest.fixture
def site(make_campaign: Any, interests: Any) -> Any:
    demo_content_seed(articles_per_category=2, seed=1)
    return make_campaign(advertiser="Trailhead", interests={"travel": 1.0}, creatives=1)


def slots(html: str) -> dict[str, dict[str, str]]:
    found = {}
    for match in SLOT.finditer(html):
        found[match.group(1)] = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', match.group(2)))
    return found


def test_pages_render_chosen_ads_with_the_markup_the_tracker_reads(client: Client, site: Any) -> None:
    html = client.get("/about/").content.decode()
    found = slots(html)
    creative = site.creatives.get()
    chosen = [attrs for attrs in found.values() if attrs["data-creative-id"] == str(creative.id)]
    assert len(chosen) == 1  # one advertiser once per page; the other slot gets a house ad
    attrs = chosen[0]
    assert attrs["data-campaign-id"] == str(site.id)
    assert attrs["data-click-recorded"] == "server"  # the tracker leaves the click to /c/<token>
    assert attrs["data-impression-url"].startswith("/i/")
    assert re.search(r'href="/c/[^"]+" rel="sponsored noopener"', html)
    assert "Advertisement · Trailhead" in html


def test_html_creatives_render_only_in_a_scriptless_sandboxed_iframe(client: Client, site: Any) -> None:
    Creative.objects.filter(campaign=site).update(
        kind=Creative.Kind.HTML,
        html='<p>Hi</p><script>parent.document.title="hijacked"</script><img src=x onerror="alert(1)">',
    )
    catalog_invalidate()
    html = client.get("/about/").content.decode()
    frame = re.search(r"<iframe[^>]*>", html)
    assert frame is not None
    assert 'sandbox=""' in frame.group(0)
    assert "srcdoc=\"&lt;p&gt;Hi&lt;/p&gt;&lt;script&gt;" in frame.group(0)
    assert "<script>parent.document" not in html and 'onerror="alert' not in html


def test_decisions_api_needs_authentication(client: Client, site: Any) -> None:
    response = client.post("/api/v1/ads/decisions", {"placements": ["sidebar"]}, content_type="application/json")
    assert response.status_code in (401, 403)


def test_explain_is_refused_to_a_non_staff_client(site: Any, interests: Any) -> None:
    """An API client (or any logged-in session) that is not staff cannot read a visitor's interest scores."""
    interests.scores["victim"] = {"travel": 0.9, "pets": 0.1}
    partner = Token.objects.create(user=get_user_model().objects.create_user("partner"))
    session = Client()
    session.force_login(get_user_model().objects.create_user("reader"))
    for api in (Client(HTTP_AUTHORIZATION=f"Token {partner.key}"), session):
        response = api.post(
            "/api/v1/ads/decisions", json.dumps({"user_id": "victim", "placements": ["sidebar"], "explain": True}),
            content_type="application/json",
        )
        assert response.status_code == 403
        assert "explain" in response.json()["errors"]["detail"] and "scores" not in response.content.decode()


def test_decisions_api_answers_per_placement_with_signed_links_and_explanation(site: Any, interests: Any) -> None:
    user = get_user_model().objects.create_user("partner", is_staff=True)
    token = Token.objects.create(user=user)
    api = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    interests.scores["reader-1"] = {"travel": 0.9, "pets": 0.1}
    response = api.post(
        "/api/v1/ads/decisions",
        json.dumps({"user_id": "reader-1", "placements": ["sidebar", "footer"], "explain": True}),
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    first, second = body["placements"]
    assert first["creative"]["id"] == site.creatives.get().id
    assert first["click_url"].startswith("http://testserver/c/") and first["impression_url"].startswith("http://testserver/i/")
    assert "travel" in first["explanation"]
    assert second["house"] and second["creative"] is None and second["click_url"] == ""
    assert body["explanation"]["interests"]["scores"][0]["category"] == "travel"
    # the click URL leads to the creative's landing page
    assert Client().get(first["click_url"].removeprefix("http://testserver"))["Location"] == site.creatives.get().landing_url
    bad = api.post("/api/v1/ads/decisions", json.dumps({"placements": []}), content_type="application/json")
    assert bad.status_code == 400


def test_decisions_endpoint_is_in_the_openapi_schema(client: Client) -> None:
    user = get_user_model().objects.create_user("docs")
    client.force_login(user)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/api/v1/ads/decisions" in schema and "ads_decide" in schema


def test_viewable_impressions_from_the_tracker_count_for_the_creative(site: Any, fresh_ads_state: Any) -> None:
    client = Client(HTTP_USER_AGENT=BROWSER)
    creative = site.creatives.get()
    html = client.get("/about/").content.decode()
    attrs = next(a for a in slots(html).values() if a["data-creative-id"] == str(creative.id))
    assert attrs["data-serve-id"]  # what the tracker's ad_impression names
    event = {
        "event_id": str(uuid.uuid4()), "type": "ad_impression", "user_id": client.cookies["adsite_uid"].value,
        "session_id": "s", "ts": int(time.time() * 1000), "url": "http://testserver/about/",
        "ad": {"creative_id": str(creative.id), "campaign_id": str(site.id), "placement": "sidebar",
               "serve_id": attrs["data-serve-id"]},
        "properties": {"viewable": True, "visible_ms": 1000},
    }
    for _ in range(2):  # the second copy is a duplicate: counted once
        response = client.post("/collect", json.dumps({"events": [event]}), content_type="text/plain")
        assert response.status_code == 202
    # the same served impression reported again under a new event id is a replay
    client.post("/collect", json.dumps({"events": [{**event, "event_id": str(uuid.uuid4())}]}), content_type="text/plain")
    assert fresh_ads_state.creative_stats(creative_id=creative.id).viewable == 1
    report = fresh_ads_state.report_read(since=None, now=time.time())
    assert report[f"{site.id}:viewable"] == 1 and report[f"{site.id}:ivi.replay"] == 1


def test_impression_url_counts_a_viewable_impression_once(client: Client, site: Any, fresh_ads_state: Any) -> None:
    html = client.get("/about/").content.decode()
    url = next(a["data-impression-url"] for a in slots(html).values() if a["data-creative-id"] == str(site.creatives.get().id))
    assert client.get(url).status_code == 204
    assert client.get(url).status_code == 204
    assert client.get("/i/forged-token").status_code == 204
    assert fresh_ads_state.creative_stats(creative_id=site.creatives.get().id).viewable == 1


def test_a_click_updates_the_creatives_statistics_and_the_visitors_features_at_once(
    site: Any, fresh_ads_state: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference import api as inference_api

    client = Client(HTTP_USER_AGENT=BROWSER)

    observed: list[Any] = []
    monkeypatch.setattr(inference_api, "events_observe", lambda records: observed.extend(records))
    creative = site.creatives.get()
    html = client.get("/about/").content.decode()
    served = fresh_ads_state.creative_stats(creative_id=creative.id)
    assert served.impressions == 1  # counted when served
    click = re.search(r'href="(/c/[^"]+)"', html).group(1)
    assert client.get(click)["Location"] == creative.landing_url
    assert fresh_ads_state.creative_stats(creative_id=creative.id).clicks == 1
    clicks = [r for r in observed if r.type == "ad_click"]
    assert len(clicks) == 1
    assert clicks[0].creative_id == str(creative.id) and clicks[0].categories == ("travel",)
    assert clicks[0].user_id == client.cookies["adsite_uid"].value


def test_seed_ads_is_idempotent_and_covers_the_categories(db: None, settings: Any, tmp_path: Any) -> None:
    from adsite.ads.models import Campaign
    from adsite.ads.services.demo import ads_demo_seed

    settings.MEDIA_ROOT = tmp_path
    demo_content_seed(articles_per_category=1, seed=1)
    first = ads_demo_seed()
    second = ads_demo_seed()
    assert second.created == 0 and (first.campaigns, first.creatives) == (second.campaigns, second.creatives)
    assert first.advertisers >= 20 and first.campaigns >= 40
    from adsite.content.selectors import category_slugs

    targeted = {slug for interests in Campaign.objects.values_list("interests", flat=True) for slug in interests}
    assert targeted == set(category_slugs())
    images = list((tmp_path / "ads").glob("*.svg"))
    assert len(images) >= 40 and images[0].read_text().startswith("<svg")
    client = Client()
    response = client.get(f"/media/ads/{images[0].name}")
    assert response["Content-Type"] == "image/svg+xml" and "sandbox" in response["Content-Security-Policy"]
    assert client.get("/media/ads/..%2Fsettings.py").status_code == 404


def test_a_page_costs_no_ad_queries_once_the_catalog_is_warm(
    client: Client, site: Any, settings: Any, django_assert_max_num_queries: Any, placements_answer: Any
) -> None:
    from adsite.ads.receivers import on_placements_requested

    settings.ADS = {**settings.ADS, "CATALOG_SECONDS": 60.0}
    client.get("/about/")
    placements_answer(None)
    with django_assert_max_num_queries(50) as without_ads:
        client.get("/about/")
    placements_answer(lambda **kwargs: on_placements_requested(None, **kwargs))
    with django_assert_max_num_queries(len(without_ads.captured_queries)):
        client.get("/about/")


def test_seeded_ad_copy_keeps_proper_nouns_and_acronyms(db: None, settings: Any, tmp_path: Any) -> None:
    """The body repeats the headline mid-sentence; only its first letter drops to lower case."""
    from adsite.ads.models import Creative
    from adsite.ads.services.demo import ads_demo_seed

    settings.MEDIA_ROOT = tmp_path
    demo_content_seed(articles_per_category=1, seed=1)
    ads_demo_seed()
    bodies = dict(Creative.objects.values_list("headline", "body"))
    assert bodies["Night trains across Europe"].endswith(": night trains across Europe. Offer for readers of The Bellwether.")
    assert ": see a GP today." in bodies["See a GP today"]
    assert ": CV reviews by recruiters." in bodies["CV reviews by recruiters"]  # not 'cV reviews'
