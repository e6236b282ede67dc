"""The dashboard's ads pages: staff only, campaigns and creatives with their delivery, pause and
resume through the ads services (audited, and ``ads_select`` stops or restarts choosing), forms,
sandboxed previews, and the visitor's kept ad decisions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from adsite.ads import decisions
from adsite.ads.accounting import MemoryLedger
from adsite.ads.catalog import catalog_invalidate
from adsite.ads.decisions import DecisionContext, PlacementRequest, ads_select
from adsite.ads.models import Campaign, Creative, DecisionExplanation
from adsite.dashboard.models import AuditEntry
from adsite.platform import Platform
from inference.api import Interests

pytestmark = pytest.mark.django_db

SHOPPER = "visitor-ads-1"
CATEGORIES = [
    "travel",
    "sports",
    "healthy-living",
    "pets",
    "science",
    "movies",
    "books-and-literature",
    "automotive",
]


def fake_interests(user_id: str, *, deadline: Any = None, top: int = 10) -> Interests:
    scores = (
        {"travel": 0.6, "healthy-living": 0.3, "sports": 0.2} if user_id else {c: 0.1 for c in CATEGORIES}
    )
    return Interests.from_shares(scores.items(), served_by="prior", model_version="test", elapsed_ms=0.1)


@pytest.fixture
def ads_state(settings: Any, monkeypatch: pytest.MonkeyPatch, fresh_platform: Platform) -> Iterator[MemoryLedger]:
    """A fresh platform (an empty in-memory ledger, no cached catalog), every decision explained and
    kept, no pacing, interests faked."""
    settings.ADS = {
        **settings.ADS,
        "PACING": False,
        "EXPLAIN_SAMPLE": 1.0,
        "CATALOG_SECONDS": 0.0,
        "BUDGET_MS": 2000.0,
    }
    memory = fresh_platform.ledger
    assert isinstance(memory, MemoryLedger)
    monkeypatch.setattr(decisions, "predict_interests", fake_interests)
    monkeypatch.setattr(decisions, "population_interests", lambda **kw: fake_interests("", **kw))
    yield memory


def decide(user_id: str = SHOPPER, placement: str = "sidebar") -> Any:
    return ads_select(
        user_id=user_id, placements=[PlacementRequest(placement)], context=DecisionContext(device="desktop")
    )


@pytest.fixture
def ads_seeded(ads_state: MemoryLedger, settings: Any, tmp_path: Any) -> dict[str, Any]:
    """The demo catalog, 30 decisions for one visitor (kept with explanations), a snapshot."""
    from adsite.ads.services.demo import ads_demo_seed
    from adsite.dashboard.rollup import rollup_refresh

    settings.MEDIA_ROOT = str(tmp_path)
    ads_demo_seed(categories=CATEGORIES)
    now = timezone.now()
    chosen = []
    rollup_refresh(now=now - timedelta(minutes=50))
    for round_ in range(5):  # five rounds between snapshots ten minutes apart: a delivery curve
        batch = [decide()] + [decide(user_id=f"reader-{round_}-{i}") for i in range(8 + 4 * round_)]
        for n, decision in enumerate(batch):
            for choice in decision.choices:
                if choice.creative is None:
                    continue
                if n % 4 != 3:  # three in four are seen
                    ads_state.viewable_add(creative_ids=[choice.creative.id])
                if n % 6 == 1:  # some are clicked (billed through the ledger like /c/<token>)
                    campaign = choice.campaign
                    ads_state.click_charge(
                        token_id=choice.serve_id,
                        campaign_id=campaign.id,
                        creative_id=choice.creative.id,
                        price_micros=campaign.price_micros if campaign.pricing == "cpc" else 0,
                        daily_budget_micros=campaign.daily_budget_micros,
                        total_budget_micros=campaign.total_budget_micros,
                        now=time.time(),
                        token_ttl_s=3600,
                    )
        chosen += batch
        rollup_refresh(now=now - timedelta(minutes=40 - 10 * round_))
    campaign_ids = {ch.campaign.id for d in chosen for ch in d.choices if ch.campaign is not None}
    return {"decisions": chosen, "campaign_ids": campaign_ids}


# --- access -----------------------------------------------------------------------------------------

PAGES = [
    "/dashboard/ads/",
    "/dashboard/ads/campaigns/1/",
    "/dashboard/ads/campaigns/new",
    "/dashboard/ads/campaigns/1/edit",
    "/dashboard/ads/creatives/new",
    "/dashboard/ads/creatives/1/edit",
    "/dashboard/ads/creatives/1/preview",
]
ACTIONS = [
    "/dashboard/ads/campaigns/1/pause",
    "/dashboard/ads/campaigns/1/resume",
    "/dashboard/ads/creatives/1/pause",
    "/dashboard/ads/creatives/1/resume",
    "/dashboard/ads/campaigns/new",
    "/dashboard/ads/campaigns/1/edit",
    "/dashboard/ads/creatives/new",
    "/dashboard/ads/creatives/1/edit",
]


@pytest.mark.parametrize("url", PAGES)
def test_ads_pages_send_anonymous_to_login_and_refuse_non_staff(url, user_client):
    response = Client().get(url)
    assert response.status_code == 302 and response["Location"].startswith("/dashboard/login/")
    assert user_client.get(url).status_code == 403


@pytest.mark.parametrize("url", ACTIONS)
def test_ads_actions_refuse_anonymous_and_non_staff_and_change_nothing(url, user_client, ads_seeded):
    before = list(Campaign.objects.order_by("id").values_list("status", flat=True))
    creatives_before = list(Creative.objects.order_by("id").values_list("active", flat=True))
    response = Client().post(url, {"name": "hijack"})
    assert response.status_code == 302 and response["Location"].startswith("/dashboard/login/")
    assert user_client.post(url, {"name": "hijack"}).status_code == 403
    assert list(Campaign.objects.order_by("id").values_list("status", flat=True)) == before
    assert list(Creative.objects.order_by("id").values_list("active", flat=True)) == creatives_before
    assert AuditEntry.objects.count() == 0


@pytest.mark.parametrize("url", ["/dashboard/ads/campaigns/1/pause", "/dashboard/ads/creatives/1/resume"])
def test_pause_and_resume_refuse_get(staff_client, url):
    assert staff_client.get(url).status_code == 405


def test_pause_needs_the_csrf_token(staff_user, ads_seeded):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    campaign_id = sorted(ads_seeded["campaign_ids"])[0]
    assert client.post(f"/dashboard/ads/campaigns/{campaign_id}/pause").status_code == 403
    assert Campaign.objects.get(id=campaign_id).status == "active"


# --- pages --------------------------------------------------------------------------------------------


def test_ads_page_lists_advertisers_campaigns_and_their_delivery(staff_client, ads_seeded):
    html = staff_client.get("/dashboard/ads/").content.decode()
    assert "Northwind Motors" in html and "House: newsletter and membership" in html
    assert 'id="chart-ads-delivery"' in html and "chart.umd.min.js" in html
    assert "Pause" in html and "on pace" not in html  # pacing is off in this test: state "off"
    served = sum(1 for d in ads_seeded["decisions"] for ch in d.choices if ch.campaign is not None)
    assert f'<span class="value">{served}</span>' in html  # served impressions tile, from the ledger


def test_delivery_series_counts_the_decisions_between_snapshots(ads_seeded):
    from adsite.dashboard.selectors.ads import ads_delivery_series

    served = sum(1 for d in ads_seeded["decisions"] for ch in d.choices if ch.campaign is not None)
    chart = ads_delivery_series(window="hour")
    assert sum(v or 0 for v in chart["series"]["served"]) == served
    one = sorted(ads_seeded["campaign_ids"])[0]
    own = sum(
        1
        for d in ads_seeded["decisions"]
        for ch in d.choices
        if ch.campaign is not None and ch.campaign.id == one
    )
    assert sum(v or 0 for v in ads_delivery_series(window="hour", campaign_id=one)["series"]["served"]) == own


def test_campaign_page_shows_creatives_with_sandboxed_previews(staff_client, ads_seeded):
    html_creative = Creative.objects.filter(kind="html").first()
    html = staff_client.get(f"/dashboard/ads/campaigns/{html_creative.campaign_id}/").content.decode()
    assert html_creative.name in html
    assert f'sandbox="" src="/dashboard/ads/creatives/{html_creative.id}/preview' in html
    preview = staff_client.get(f"/dashboard/ads/creatives/{html_creative.id}/preview")
    assert preview["X-Frame-Options"] == "SAMEORIGIN"
    body = preview.content.decode()
    # the HTML creative itself only ever appears inside the slot's sandboxed srcdoc iframe
    assert 'sandbox="" srcdoc="' in body and "&lt;script&gt;" in body and "<script>document" not in body
    image = Creative.objects.filter(kind="image").exclude(image="").first()
    body = staff_client.get(f"/dashboard/ads/creatives/{image.id}/preview").content.decode()
    assert "ad-slot__image" in body and image.headline in body and "site/site.css" in body


def test_visitor_page_shows_recent_ad_decisions_with_explanations(staff_client, ads_seeded):
    assert DecisionExplanation.objects.filter(user_id=SHOPPER).exists()
    html = staff_client.get(f"/dashboard/visitors/?user_id={SHOPPER}").content.decode()
    assert "No ad decisions recorded" not in html
    assert "matches your interest in travel" in html and "Top candidates" in html


@pytest.mark.parametrize(
    "url",
    [
        "/dashboard/ads/",
        "/dashboard/ads/campaigns/{c}/",
        "/dashboard/ads/campaigns/{c}/edit",
        "/dashboard/ads/creatives/new",
        f"/dashboard/visitors/?user_id={SHOPPER}",
        "/dashboard/",
    ],
)
def test_ads_pages_query_count_is_bounded(staff_client, ads_seeded, url, django_assert_max_num_queries):
    from adsite.ads.models import Advertiser

    url = url.format(c=sorted(ads_seeded["campaign_ids"])[0])
    staff_client.get(url)
    with django_assert_max_num_queries(20):
        assert staff_client.get(url).status_code == 200
    # ten more campaigns with creatives: the same number of queries
    advertiser = Advertiser.objects.create(name="More Co")
    for i in range(10):
        campaign = Campaign.objects.create(
            advertiser=advertiser,
            name=f"more {i}",
            starts_at=timezone.now() - timedelta(days=1),
            bid=1,
            daily_budget=100,
            total_budget=1000,
        )
        Creative.objects.create(
            campaign=campaign, name=f"more {i}", headline="h", landing_url="https://more.example/"
        )
    with django_assert_max_num_queries(20):
        assert staff_client.get(url).status_code == 200


# --- actions ------------------------------------------------------------------------------------------


def sponsorship_campaign() -> Campaign:
    """A sponsorship for every visitor, no caps: chosen by every decision while it runs."""
    from adsite.ads.models import Advertiser

    campaign = Campaign.objects.create(
        advertiser=Advertiser.objects.create(name="Always On Ltd"),
        name="Everywhere",
        tier="sponsorship",
        pricing="cpm",
        bid=5,
        daily_budget=1000,
        total_budget=100000,
        starts_at=timezone.now() - timedelta(days=1),
    )
    Creative.objects.create(
        campaign=campaign, name="Everywhere 1", headline="Always", landing_url="https://on.example/"
    )
    catalog_invalidate()
    return campaign


def chosen_campaigns(n: int = 10) -> set[int]:
    return {
        ch.campaign.id for i in range(n) for ch in decide(user_id=f"u{i}").choices if ch.campaign is not None
    }


def test_pause_stops_selection_and_resume_brings_it_back_audited(staff_client, staff_user, ads_seeded):
    target = sponsorship_campaign().id
    assert chosen_campaigns() == {target}
    response = staff_client.post(f"/dashboard/ads/campaigns/{target}/pause", {"next": "/dashboard/ads/"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/ads/"
    assert Campaign.objects.get(id=target).status == "paused"
    assert target not in chosen_campaigns()
    staff_client.post(f"/dashboard/ads/campaigns/{target}/resume", {"next": "https://evil.example/"})
    assert Campaign.objects.get(id=target).status == "active"
    assert chosen_campaigns() == {target}
    entries = list(AuditEntry.objects.order_by("id").values_list("action", "target", "actor_name", "ok"))
    assert entries == [
        ("campaign.pause", f"campaign {target}", staff_user.username, True),
        ("campaign.resume", f"campaign {target}", staff_user.username, True),
    ]


def test_pausing_a_creative_leaves_its_campaign_running_on_the_others(staff_client, ads_seeded):
    creative = Creative.objects.filter(campaign__tier="house").order_by("id").first()
    staff_client.post(f"/dashboard/ads/creatives/{creative.id}/pause")
    assert not Creative.objects.get(id=creative.id).active
    served = {
        ch.creative.id for _ in range(40) for ch in decide(user_id="").choices if ch.creative is not None
    }
    assert creative.id not in served
    assert AuditEntry.objects.filter(action="creative.pause", target=f"creative {creative.id}").exists()


def test_pausing_an_unknown_campaign_is_refused_and_audited_as_failed(staff_client, ads_seeded):
    response = staff_client.post("/dashboard/ads/campaigns/999999/pause", follow=True)
    assert "Campaign matching query does not exist" in response.content.decode()
    assert AuditEntry.objects.get(action="campaign.pause").ok is False


def _categories() -> None:
    from adsite.content.models import Category

    for slug in CATEGORIES:
        Category.objects.get_or_create(slug=slug, defaults={"name": slug.replace("-", " ").title()})


def test_campaign_and_creative_are_created_and_edited_from_forms(staff_client, ads_seeded):
    from adsite.ads.models import Advertiser

    _categories()
    advertiser = Advertiser.objects.get(name="Pulse Fitness")
    response = staff_client.post(
        "/dashboard/ads/campaigns/new",
        {
            "advertiser": advertiser.id,
            "name": "Spring run",
            "status": "active",
            "tier": "standard",
            "starts_at": (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "ends_at": "",
            "pricing": "cpc",
            "bid": "0.50",
            "daily_budget": "100",
            "total_budget": "1000",
            "target_0": "sports",
            "weight_0": "1",
            "interest_min_score": "0",
            "devices": "[]",
            "hours": "[]",
            "cap_per_hour": "2",
            "cap_per_day": "5",
        },
    )
    campaign = Campaign.objects.get(name="Spring run")
    assert response.status_code == 302 and response["Location"] == f"/dashboard/ads/campaigns/{campaign.id}/"
    assert campaign.interests == {"sports": 1.0} and campaign.cap_per_day == 5
    bad = staff_client.post(
        "/dashboard/ads/creatives/new",
        {
            "campaign": campaign.id,
            "name": "Bad link",
            "kind": "image",
            "size": "fluid",
            "headline": "Run",
            "landing_url": "javascript:alert(1)",
            "cta": "Go",
            "active": "on",
        },
    )
    assert bad.status_code == 200 and not Creative.objects.filter(name="Bad link").exists()
    staff_client.post(
        "/dashboard/ads/creatives/new",
        {
            "campaign": campaign.id,
            "name": "Run shoes",
            "kind": "image",
            "size": "fluid",
            "headline": "Run",
            "body": "Fast",
            "cta": "Go",
            "landing_url": "https://pulse.example/run",
            "active": "on",
        },
    )
    creative = Creative.objects.get(name="Run shoes")
    edit = staff_client.get(f"/dashboard/ads/campaigns/{campaign.id}/edit").content.decode()
    assert 'value="Spring run"' in edit
    staff_client.post(
        f"/dashboard/ads/creatives/{creative.id}/edit",
        {
            "campaign": campaign.id,
            "name": "Run shoes",
            "kind": "image",
            "size": "fluid",
            "headline": "Run faster",
            "body": "Fast",
            "cta": "Go",
            "landing_url": "https://pulse.example/run",
            "active": "on",
        },
    )
    assert Creative.objects.get(id=creative.id).headline == "Run faster"
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "details"))
    assert [a for a, _ in actions] == ["campaign.create", "creative.create", "creative.update"]
    assert actions[-1][1]["fields"] == ["headline"]
    assert actions[-1][1]["changes"] == {"headline": {"old": "Run", "new": "Run faster"}}


CAMPAIGN_POST = {
    "name": "Autumn run",
    "status": "active",
    "tier": "standard",
    "ends_at": "",
    "pricing": "cpc",
    "bid": "0.50",
    "daily_budget": "100",
    "total_budget": "1000",
    "interest_min_score": "0",
    "devices": "[]",
    "hours": "[]",
    "cap_per_hour": "0",
    "cap_per_day": "0",
}


def test_campaign_form_picks_targeting_from_the_taxonomy_and_refuses_unknown_categories(staff_client, ads_seeded):
    from adsite.ads.models import Advertiser

    _categories()
    advertiser = Advertiser.objects.get(name="Pulse Fitness")
    post = {
        **CAMPAIGN_POST,
        "advertiser": advertiser.id,
        "starts_at": (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }
    form = staff_client.get("/dashboard/ads/campaigns/new").content.decode()
    assert '<option value="travel">Travel</option>' in form  # picked from the categories, not typed JSON
    assert "Bid (USD)" in form and "Daily budget (USD)" in form
    refused = staff_client.post("/dashboard/ads/campaigns/new", {**post, "target_0": "no-such-topic"})
    assert refused.status_code == 200 and not Campaign.objects.filter(name="Autumn run").exists()
    assert "no-such-topic" in refused.content.decode()
    staff_client.post(
        "/dashboard/ads/campaigns/new",
        {**post, "target_0": "travel", "weight_0": "1", "target_1": "pets", "weight_1": "0.3"},
    )
    campaign = Campaign.objects.get(name="Autumn run")
    assert campaign.interests == {"travel": 1.0, "pets": 0.3}
    edit = staff_client.get(f"/dashboard/ads/campaigns/{campaign.id}/edit").content.decode()
    assert 'value="0.50"' in edit and 'value="100.00"' in edit and "0.5000" not in edit
    staff_client.post(
        f"/dashboard/ads/campaigns/{campaign.id}/edit",
        {**post, "bid": "0.75", "target_0": "travel", "weight_0": "1"},
    )
    entry = AuditEntry.objects.filter(action="campaign.update").get()
    assert entry.details["changes"] == {
        "bid": {"old": "0.5", "new": "0.75"},
        "interests": {"old": {"travel": 1.0, "pets": 0.3}, "new": {"travel": 1.0}},
    }
    audit = staff_client.get("/dashboard/audit/?kind=campaign").content.decode()
    assert "0.5" in audit and "0.75" in audit and "campaign.update" in audit


def test_house_budget_and_amounts_read_as_money(staff_client, ads_seeded):
    html = staff_client.get("/dashboard/ads/").content.decode()
    assert "1000000000" not in html and "no limit" in html and " USD" in html
    house = Campaign.objects.filter(tier="house").first()
    page = staff_client.get(f"/dashboard/ads/campaigns/{house.id}/").content.decode()
    assert "no limit" in page and "1000000000" not in page


def test_caps_hit_show_as_decisions_the_campaign_sat_out(staff_client, ads_seeded):
    from adsite.dashboard.rollup import rollup_refresh

    campaign = sponsorship_campaign()
    Campaign.objects.filter(id=campaign.id).update(cap_per_hour=1)
    catalog_invalidate()
    rollup_refresh(now=timezone.now() - timedelta(seconds=30))
    first, second = decide(user_id="capped-reader"), decide(user_id="capped-reader")
    assert first.choices[0].campaign.id == campaign.id and second.choices[0].campaign.id != campaign.id
    rollup_refresh()
    html = staff_client.get(f"/dashboard/ads/campaigns/{campaign.id}/").content.decode()
    assert "capped 1," in html


def test_delivery_report_per_campaign_and_day_with_fill_rate_and_csv(staff_client, ads_seeded):
    import csv
    import io

    from adsite.dashboard.models import AdsDay

    served = sum(1 for d in ads_seeded["decisions"] for ch in d.choices if ch.campaign is not None)
    assert AdsDay.objects.filter(day=timezone.now().date()).exists()
    html = staff_client.get("/dashboard/ads/report/?range=7d").content.decode()
    assert 'id="chart-pacing"' in html and "CTR = clicks / served impressions" in html
    assert f"<span class=\"value\">{served:,}</span>" in html
    assert 'data-placement="sidebar"' in html  # fill rate per placement, from the snapshots
    assert 'id="report-invalid"' in html
    rows = list(csv.reader(io.StringIO(
        staff_client.get("/dashboard/ads/report/?format=csv&range=7d&table=campaigns").content.decode()
    )))
    assert rows[0][7] == "ctr (clicks / served impressions)"
    assert sum(int(r[3]) for r in rows[1:]) == served
    days = list(csv.reader(io.StringIO(
        staff_client.get("/dashboard/ads/report/?format=csv&range=7d&table=days").content.decode()
    )))
    assert len(days) > 1 and days[1][0] == str(timezone.now().date())
    for table in ("fill", "invalid"):
        assert staff_client.get(f"/dashboard/ads/report/?format=csv&table={table}").status_code == 200


def test_a_long_delivery_report_shows_its_newest_rows_and_the_csv_has_all(staff_client, ads_seeded, settings):
    """Months of delivery: the page lists the newest rows of the per-campaign-and-day table and says
    how many there are; its CSV has every one."""
    import csv
    import io

    from adsite.dashboard import adops
    from adsite.dashboard.models import AdsDay

    today = timezone.now().date()
    campaigns = sorted(ads_seeded["campaign_ids"])[:3]
    AdsDay.objects.exclude(day=today).delete()
    AdsDay.objects.bulk_create([
        AdsDay(day=today - timedelta(days=k), campaign=str(c), served=10_000 - 50 * k, viewable=5_000 - 20 * k,
               clicks=100 - k // 2, spend=100.0 - 0.4 * k)
        for k in range(1, 120) for c in campaigns
    ])
    start = today - timedelta(days=100)
    query = f"range=custom&start={start}&end={today - timedelta(days=1)}"
    html = staff_client.get(f"/dashboard/ads/report/?{query}").content.decode()
    table = html[html.index('id="report-days"'):]
    shown = table.count("<tr><td>")
    assert shown == adops.DAYS_SHOWN
    assert f"The newest {adops.DAYS_SHOWN} of {100 * len(campaigns)} rows" in table
    assert f"<td>{today - timedelta(days=1)}</td>" in table and f"<td>{start}</td>" not in table
    rows = list(csv.reader(io.StringIO(
        staff_client.get(f"/dashboard/ads/report/?format=csv&{query}&table=days").content.decode()
    )))
    assert len(rows) - 1 == 100 * len(campaigns) and rows[-1][0] == str(start)


def test_delivery_report_shows_refused_clicks_by_reason(staff_client, ads_seeded):
    """A script following forged click links is refused, and ad-ops see it counted on the report."""
    from django.test import Client

    script = Client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36")
    assert all(script.get(f"/c/forged-{n}").status_code == 302 for n in range(3))
    html = staff_client.get("/dashboard/ads/report/?range=7d").content.decode()
    table = html[html.index('id="report-invalid"'):]
    assert "<td>unknown_serve</td><td class=\"num\">0</td><td class=\"num\">3</td>" in table


def test_delivery_report_shows_the_ads_chosen_on_visitors_devices(staff_client, ads_seeded, settings):
    """Edge mode: a browser takes the server's offers and reports its choice; ad-ops see per creative how
    often that happened, and nothing below the minimum audience."""
    import json

    from tests.ads.conftest import browser

    settings.ADS = {**settings.ADS, "EDGE_MIN_AUDIENCE": 3}
    device = browser("")
    offers = device.get("/edge/ads", {"placements": "sidebar"}).json()["offers"]
    assert offers
    first, *rest = offers

    def choose(offer: dict[str, Any]) -> None:
        response = device.post("/edge/ads/serve", json.dumps({"offers": [offer["offer"]]}), content_type="text/plain")
        assert response.status_code == 200 and response.json()["served"], response.content

    for _ in range(3):
        choose(first)
    html = staff_client.get("/dashboard/ads/report/?range=7d").content.decode()
    table = html[html.index('id="report-edge"'):html.index("</table>", html.index('id="report-edge"'))]
    row = table[table.index(f'data-edge-creative="{first["creative_id"]}"'):]
    assert '<td class="num">3</td>' in row.split("</tr>")[0]
    csv_rows = staff_client.get("/dashboard/ads/report/?range=7d&format=csv&table=edge").content.decode().splitlines()
    assert csv_rows[0].startswith("creative_id,campaign_id,campaign,reported,served")
    assert any(line.startswith(f"{first['creative_id']},") and ",True,3," in line for line in csv_rows[1:])
    # a creative chosen once is listed without its counts
    other = next(o for o in rest if o["creative_id"] != first["creative_id"])
    choose(other)
    html = staff_client.get("/dashboard/ads/report/?range=7d").content.decode()
    row = html[html.index(f'data-edge-creative="{other["creative_id"]}"'):].split("</tr>")[0]
    assert "fewer than 3 served: not reported" in row


def test_ads_page_draws_the_wear_out_of_repeated_ads_the_ledger_taught(staff_client, ads_seeded, ads_state, settings):
    import re

    creative = Creative.objects.filter(campaign__tier="standard").first()
    # second impressions clicked at half a first's rate, against what the click model expected of them
    ads_state.statistics_add(creative_id=creative.id, impressions=0, clicks=0, extra_exposure_micros=0,
                             repeat_expected=[400_000_000, 400_000_000, 0, 0], repeat_clicks=[400, 200, 0, 0])
    html = staff_client.get("/dashboard/ads/").content.decode()
    table = html[html.index('id="wear-out"'):]
    rows = re.findall(r'<th scope="row">([^<]+)</th><td class="num">(\d+)</td>.*?</span></span> ([\d.]+)</td>', table, re.S)
    factors = {label: float(factor) for label, _, factor in rows}
    assert list(factors) == ["1st", "2nd", "3rd", "4th and later"]
    assert factors["1st"] == 1.0 and 0.5 <= factors["2nd"] <= 0.6  # 200 + 20 prior over 400 + 20
    assert factors["3rd"] == factors["2nd"]  # no evidence past the 2nd: never above the bucket before
    settings.ADS = {**settings.ADS, "WEAR_OUT": False}
    assert "switched off" in staff_client.get("/dashboard/ads/").content.decode()
