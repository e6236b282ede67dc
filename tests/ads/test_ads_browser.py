"""An ad end to end in Debian's Chromium (Playwright) against a live server: an article page shows a
served ad -> the slot stays in view for more than a second, so tracker.js reports a viewable
impression -> a click on the ad goes through ``/c/<token>`` and lands on the creative's landing URL ->
the click is recorded and billed once, the creative's statistics count the viewable impression and
the click, and the visitor's online features hold the ad impression and the ad click.

The landing URLs point back at the live server (``/about/``): the test machine has no outside network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from adsite.ads.accounting import ledger
from adsite.ads.catalog import catalog_invalidate
from adsite.ads.models import AdClick, Creative
from adsite.ads.selectors import campaign_delivery_list
from adsite.ads.services.demo import ads_demo_seed
from adsite.ads.services.staff import creative_update
from adsite.content.models import Article
from adsite.content.services import demo_content_seed
from inference.store import feature_store

pytestmark = pytest.mark.browser

SERVED_SLOT = ".ad-slot[data-click-recorded='server']"  # a campaign's ad (house ads have no click URL)


@pytest.fixture
def fast_tracker(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TRACKING = {**settings.TRACKING, "TRACKER_PING_SECONDS": 1.0, "TRACKER_FLUSH_SECONDS": 0.5}
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser(browser: Any, fast_tracker: None) -> Any:
    """The shared Chromium (tests/conftest.py), with the tracker flushing fast."""
    return browser


@pytest.fixture
def empty_buffer(request: pytest.FixtureRequest) -> None:
    """Services mode: start from an empty event stream (earlier tests' events stay out)."""
    if django_settings.ADSITE_MODE == "services":
        request.getfixturevalue("redis_client")


@pytest.fixture
def article(live_server: Any) -> Article:
    """Demo content and ads, every creative landing on the live server's about page."""
    demo_content_seed(articles_per_category=4)
    ads_demo_seed()
    for creative_id in Creative.objects.values_list("id", flat=True):
        creative_update(
            creative_id=creative_id,
            fields={"landing_url": f"{live_server.url}/about/?creative={creative_id}"},
        )
    catalog_invalidate()
    return Article.objects.select_related("category").order_by("-published_at").first()


def _flush_buffer() -> None:
    if django_settings.ADSITE_MODE == "services":
        call_command("flush_events")


def _wait_until(condition: Callable[[], bool], page: Any, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        _flush_buffer()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not in time: {what}")
        page.wait_for_timeout(250)


@pytest.mark.django_db(transaction=True)
def test_viewable_impression_and_click_reach_the_ledger_and_the_visitors_features(
    browser: Any, live_server: Any, article: Article, empty_buffer: None
) -> None:
    # a reader's Chrome: the headless one says "HeadlessChrome", which tracking rightly treats as a bot
    user_agent = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{browser.version} Safari/537.36"
    )
    context = browser.new_context(viewport={"width": 1280, "height": 800}, user_agent=user_agent)
    page = context.new_page()
    page.goto(f"{live_server.url}/article/{article.slug}/")
    visitor = next(c["value"] for c in context.cookies() if c["name"] == "adsite_uid")
    slot = page.locator(SERVED_SLOT).first
    creative_id = int(slot.get_attribute("data-creative-id"))
    creative = Creative.objects.select_related("campaign").get(id=creative_id)
    categories = set(creative.campaign.interests)  # what the click event carries
    assert categories, "a demo campaign targets some categories"
    before = ledger().creative_stats(creative_id=creative_id)

    # in view for more than a second, with a reader's activity: one viewable impression
    slot.scroll_into_view_if_needed()
    for step in range(8):
        page.mouse.move(400 + step, 300)
        page.wait_for_timeout(200)
    _wait_until(
        lambda: ledger().creative_stats(creative_id=creative_id).viewable > before.viewable,
        page,
        "the tracker's viewable impression counted for the creative",
    )

    with page.expect_navigation():
        slot.locator("a.ad-slot__creative").first.click()
    page.wait_for_load_state()
    assert page.url == creative.landing_url == f"{live_server.url}/about/?creative={creative_id}"

    clicks = AdClick.objects.filter(creative_id=creative_id)
    assert [(c.outcome, c.user_id) for c in clicks] == [(AdClick.Outcome.BILLED, visitor)]
    after = ledger().creative_stats(creative_id=creative_id)
    assert after.clicks == before.clicks + 1
    assert after.viewable == before.viewable + 1
    assert after.impressions >= 1  # served when the page was rendered
    delivery = {c.id: c for c in campaign_delivery_list(campaign_id=creative.campaign_id)[0].creatives}
    assert (delivery[creative_id].clicks, delivery[creative_id].viewable) == (after.clicks, after.viewable)

    def features_updated() -> bool:
        sums = feature_store().user_state(visitor).sums
        return sums.get("t:ad_impression", 0) >= 1 and sums.get("t:ad_click", 0) >= 1

    _wait_until(features_updated, page, "the visitor's online features saw the ad impression and the click")
    sums = feature_store().user_state(visitor).sums
    assert sums["t:ad_click"] == 1
    assert {name.removeprefix("ac:") for name in sums if name.startswith("ac:")} == categories
    assert any(name.startswith("ai:") for name in sums)  # the impression, under the page's categories
    context.close()
