"""The dashboard a morning's work is done in, in Debian's Chromium (Playwright) on browsing history
that spans two weeks: the styled sign-in page, analytics by event time (7 days against the previous
7, a custom range, CSV), the visitor list and search (an unknown id is "not found"), the delivery
report with its pacing chart, the campaign form (targeting from the taxonomy, amounts in the
currency), pausing a campaign (its name, back at its row), the audit trail's old and new values and
its filter, and logging out. Screenshots in docs/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.test_dashboard_ads import ads_seeded, ads_state  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def _delivery_history(ledger: Any, *, days: int = 6) -> None:
    """A week of ad delivery through the real path (decisions, viewable impressions and charged clicks
    on the ledger), recorded by the rollup at the end of each day (a simulated clock)."""
    import time as clock
    from datetime import timedelta

    from django.utils import timezone

    from adsite.dashboard.models import AdsDay
    from adsite.dashboard.rollup import metrics_snapshot_take
    from tests.dashboard.test_dashboard_ads import decide

    AdsDay.objects.all().delete()
    now = timezone.now()
    for k in range(days, 0, -1):
        for n in range(6 + 3 * (k % 3)):
            for choice in decide(user_id=f"past-{k}-{n}").choices:
                if choice.creative is None:
                    continue
                if n % 4 != 3:
                    ledger.viewable_add(creative_ids=[choice.creative.id])
                if n % 5 == 1:
                    campaign = choice.campaign
                    ledger.click_charge(
                        token_id=choice.serve_id, campaign_id=campaign.id, creative_id=choice.creative.id,
                        price_micros=campaign.price_micros if campaign.pricing == "cpc" else 0,
                        daily_budget_micros=campaign.daily_budget_micros,
                        total_budget_micros=campaign.total_budget_micros, now=clock.time(), token_ttl_s=3600,
                    )
        metrics_snapshot_take(now=now - timedelta(days=k))
    metrics_snapshot_take(now=now)


@pytest.mark.usefixtures("ads_seeded")
def test_a_morning_in_the_dashboard(browser, live_server, transactional_db, staff_user, embedded, ads_state):  # noqa: F811 (the fixture)
    from adsite.ads.models import Campaign
    from adsite.content.models import Category
    from adsite.dashboard.analytics import analytics_roll
    from adsite.dashboard.models import AuditEntry
    from tests.dashboard.analytics_data import history_ingest
    from tests.dashboard.test_dashboard_ads import CATEGORIES, sponsorship_campaign

    for slug in CATEGORIES:
        Category.objects.get_or_create(slug=slug, defaults={"name": slug.replace("-", " ").title()})
    history_ingest(days=14, visitors=40)
    analytics_roll()
    _delivery_history(ads_state)
    base = live_server.url
    page = browser.new_page(viewport={"width": 1400, "height": 900})

    # sign in on the dashboard's own page, not the bare admin one
    page.goto(f"{base}/dashboard/analytics/")
    assert "/dashboard/login/" in page.url and page.locator("text=Django administration").count() == 0
    page.fill("#id_username", "staffer")
    page.fill("#id_password", "wrong")
    page.click("#sign-in")
    page.wait_for_selector("[role=alert]")
    _shot(page, "login")
    page.fill("#id_password", "pw-staff-123")
    page.click("#sign-in")
    page.wait_for_url(f"{base}/dashboard/analytics/")

    # analytics: the last 7 days against the 7 before, charts drawn, every table with its CSV link
    page.wait_for_selector("#chart-analytics")
    assert page.evaluate("typeof Chart") == "function"
    assert page.inner_text("[data-tile=visitors] .value") not in ("", "0", "–")
    assert "vs previous" in page.inner_text("[data-tile=sessions] .sub")
    for table in ("pages", "referrers", "campaigns", "devices", "browsers", "entry_pages", "exit_pages"):
        assert page.locator(f"table[data-analytics-table={table}] tbody tr").count() >= 1
    _shot(page, "analytics")
    with page.expect_download() as download:
        page.click("a[data-csv=referrers]")
    assert download.value.suggested_filename.startswith("analytics-referrers-")
    page.click("a[data-range='30d']")
    page.wait_for_selector("a[data-range='30d'][aria-current=true]")

    # visitors: a list, a search, and an id nobody has
    page.goto(f"{base}/dashboard/visitors/")
    page.wait_for_selector("#visitor-list tbody tr[data-visitor]")
    page.fill("#visitor-q", "reader-01")
    page.click("#visitor-search")
    page.wait_for_selector("tr[data-visitor='reader-012']")
    assert page.locator("tr[data-visitor='reader-021']").count() == 0
    _shot(page, "visitors-list")
    page.fill("#id_user_id", "nobody-like-this")
    page.keyboard.press("Enter")
    page.wait_for_selector("#visitor-not-found")
    assert page.locator("#chart-profile").count() == 0

    # the delivery report: per campaign and day, pacing against the target, fill rate per placement
    page.goto(f"{base}/dashboard/ads/report/?range=7d")
    page.wait_for_selector("#chart-pacing")
    assert page.locator("#report-campaigns tbody tr[data-campaign-id]").count() > 0
    assert page.locator("#report-fill tbody tr[data-placement]").count() > 0
    assert "clicks / served impressions" in page.inner_text("#report-tiles")
    days = page.evaluate("[...document.querySelectorAll('#report-days tbody td:first-child')].map(td => td.textContent)")
    assert len(set(days)) >= 5  # delivery spans the week
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the report scrolls sideways: {widths}"
    _shot(page, "ads-report")

    # the campaign form: targeting picked from the taxonomy, amounts in the currency, two decimals
    target = sponsorship_campaign()
    page.goto(f"{base}/dashboard/ads/campaigns/{target.id}/edit")
    assert page.locator("label[for=id_bid]").inner_text() == "Bid (USD)"
    bid = page.input_value("#id_bid")
    assert bid.count(".") == 1 and len(bid.split(".")[1]) == 2
    page.select_option("#id_target_0", "pets")
    page.fill("#id_weight_0", "2")
    _shot(page, "campaign-form")
    page.click("button[type=submit]:has-text('Save campaign')")
    page.wait_for_selector("text=Saved")
    assert Campaign.objects.get(id=target.id).interests.get("pets") == 2.0

    # pause from the campaigns list: the message names it and the page comes back at its row
    page.goto(f"{base}/dashboard/ads/")
    row = f"tr[data-campaign-id='{target.id}']"
    page.locator(row).scroll_into_view_if_needed()
    page.click(f"{row} button[data-action='pause-campaign']")
    page.wait_for_selector(f"text=Campaign {target.name} paused")
    assert page.url.endswith(f"#campaign-{target.id}")
    assert page.evaluate("window.scrollY") > 0
    assert page.is_visible(".messages")

    # the audit trail: old and new values of the edit, filtered to campaign actions
    page.goto(f"{base}/dashboard/audit/")
    page.select_option("#audit-kind", "campaign")
    page.click("#audit-filter")
    page.wait_for_selector("tr[data-action='campaign.update'] li[data-field=interests] .change-new")
    assert page.locator("tr[data-action^='model.']").count() == 0
    _shot(page, "audit")
    assert AuditEntry.objects.filter(action="campaign.pause", details__changes__status__new="paused").exists()

    # log out: back to the sign-in page, the dashboard closed again
    page.click("#log-out")
    page.wait_for_url(f"{base}/dashboard/login/")
    page.goto(f"{base}/dashboard/")
    assert "/dashboard/login/" in page.url
