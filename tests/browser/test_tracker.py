"""tracker.js in Debian's Chromium, driven by Playwright against a live server.

Two kinds of check: what the tracker sends (``/collect`` intercepted by the browser, so these need
only the pages), and what reaches the ``Event`` table through the real ``/collect`` (page_view
exactly once although the server and the tracker both send it, page_ping, click, viewable
ad_impression; nothing at all under Global Privacy Control). Also saves the screenshots in
docs/screenshots/.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from adsite.content.models import Article
from adsite.content.services import demo_content_seed

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
EVENT_KEYS = {
    "event_id",
    "type",
    "user_id",
    "session_id",
    "ts",
    "url",
    "referrer",
    "item_id",
    "categories",
    "properties",
}
GPC_SCRIPT = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true, configurable: true});"
DNT_SCRIPT = "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1', configurable: true});"


@pytest.fixture
def fast_tracker(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TRACKING = {**settings.TRACKING, "TRACKER_PING_SECONDS": 1.0, "TRACKER_FLUSH_SECONDS": 1.0}
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser(browser: Any, fast_tracker: None) -> Any:
    """The shared Chromium (tests/conftest.py), with the tracker flushing fast."""
    return browser


@pytest.fixture
def article(live_server: Any) -> Article:
    demo_content_seed(articles_per_category=4)
    return Article.objects.select_related("category").order_by("-published_at").first()


def _new_page(browser: Any, *, gpc: bool = False, dnt: bool = False) -> Any:
    headers = {**({"Sec-GPC": "1"} if gpc else {}), **({"DNT": "1"} if dnt else {})}
    context = browser.new_context(viewport={"width": 1280, "height": 800}, extra_http_headers=headers)
    if gpc:
        context.add_init_script(GPC_SCRIPT)
    if dnt:
        context.add_init_script(DNT_SCRIPT)
    return context.new_page()


def _capture_collect(page: Any, status: Callable[[int], int] = lambda n: 202) -> list[list[dict[str, Any]]]:
    """Answer /collect in the browser and keep each batch the tracker sent."""
    batches: list[list[dict[str, Any]]] = []

    def handle(route: Any) -> None:
        batches.append(json.loads(route.request.post_data or "{}").get("events", []))
        route.fulfill(status=status(len(batches)), content_type="application/json", body="{}")

    page.route("**/collect", handle)
    return batches


def _sent(batches: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [event for batch in batches for event in batch]


def _wait_until(condition: Callable[[], bool], page: Any, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        page.wait_for_timeout(250)


def _dwell_on(page: Any, selector: str, ms: int = 1600) -> None:
    page.locator(selector).first.scroll_into_view_if_needed()
    for step in range(ms // 200):
        page.mouse.move(400 + step, 300)  # a reader's activity keeps the page "engaged"
        page.wait_for_timeout(200)


def _screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def test_tracker_sends_the_design_schema_and_reuses_the_page_view_id(
    browser: Any, live_server: Any, article: Article
) -> None:
    page = _new_page(browser)
    batches = _capture_collect(page)
    page.goto(f"{live_server.url}/")
    _screenshot(page, "site-home.png")
    page.goto(f"{live_server.url}/article/{article.slug}/")
    _screenshot(page, "site-article.png")
    page_view_id = page.locator("body").get_attribute("data-page-view-id")
    _dwell_on(page, ".ad-slot--in_article")
    _wait_until(lambda: {"page_ping", "ad_impression"} <= {e["type"] for e in _sent(batches)}, page)
    page.wait_for_timeout(1200)  # one more flush interval

    events = _sent(batches)
    assert all(set(e) - {"ad"} == EVENT_KEYS for e in events)
    views = [e for e in events if e["type"] == "page_view" and e["item_id"] == article.slug]
    assert [v["event_id"] for v in views] == [page_view_id]
    assert views[0]["categories"] == [article.category.slug]
    uid = next(c["value"] for c in page.context.cookies() if c["name"] == "adsite_uid")
    assert {e["user_id"] for e in events} == {uid}
    assert len({e["session_id"] for e in events}) == 1
    impressions = {e["ad"]["placement"]: e for e in events if e["type"] == "ad_impression"}
    assert "in_article" in impressions and "footer" not in impressions
    assert impressions["in_article"]["ad"]["creative_id"] == "house-membership"
    pings = [e for e in events if e["type"] == "page_ping"]
    assert all(p["properties"]["engaged_ms"] >= 1000 for p in pings)


def test_a_refused_batch_is_kept_and_resent_with_the_same_event_ids(
    browser: Any, live_server: Any, article: Article
) -> None:
    page = _new_page(browser)
    batches = _capture_collect(page, status=lambda n: 503 if n == 1 else 202)
    page.goto(f"{live_server.url}/article/{article.slug}/")
    page_view_id = page.locator("body").get_attribute("data-page-view-id")

    _wait_until(lambda: sum(e["event_id"] == page_view_id for e in _sent(batches)) >= 2, page)
    assert batches[0][0]["event_id"] == page_view_id  # the refused one came back, not a copy with a new id
    _wait_until(lambda: page.evaluate("localStorage.getItem('adsite_outbox')") is None, page)


def test_nothing_is_sent_before_consent_and_the_page_view_follows_acceptance(
    browser: Any, live_server: Any, article: Article, settings: Any
) -> None:
    settings.TRACKING = {**settings.TRACKING, "CONSENT_REQUIRED": True}
    page = _new_page(browser)
    batches = _capture_collect(page)
    page.goto(f"{live_server.url}/article/{article.slug}/")
    page_view_id = page.locator("body").get_attribute("data-page-view-id")
    _dwell_on(page, ".ad-slot--in_article", ms=2400)

    assert batches == []
    page.get_by_role("button", name="Accept measurement").click()
    _wait_until(lambda: any(e["event_id"] == page_view_id for e in _sent(batches)), page)
    assert next(c["value"] for c in page.context.cookies() if c["name"] == "adsite_consent") == "granted"
    assert page.locator("[data-consent-banner]").is_hidden()


@pytest.mark.parametrize("signal", ["gpc", "dnt"])
def test_privacy_signals_mean_the_tracker_sends_and_keeps_nothing(
    browser: Any, live_server: Any, article: Article, signal: str
) -> None:
    page = _new_page(browser, gpc=signal == "gpc", dnt=signal == "dnt")
    batches = _capture_collect(page)
    page.goto(f"{live_server.url}/article/{article.slug}/")
    _dwell_on(page, ".ad-slot--in_article", ms=2400)
    page.locator(".most-list a").first.click(modifiers=["Control"])  # a click that stays on the page
    page.wait_for_timeout(1500)

    assert batches == []
    storage = page.evaluate(
        "[localStorage.getItem('adsite_outbox'), sessionStorage.getItem('adsite_session')]"
    )
    assert storage == [None, None]
    assert page.evaluate("window.adsiteTracker.track('conversion', {})") is None


@pytest.fixture
def empty_buffer(request: pytest.FixtureRequest) -> None:
    """Services mode: start from an empty event stream (earlier tests' server page views stay out)."""
    if django_settings.ADSITE_MODE == "services":
        request.getfixturevalue("redis_client")


def _flush_buffer() -> None:
    if django_settings.ADSITE_MODE == "services":
        call_command("flush_events")


def _settled(check: Callable[[], bool]) -> bool:
    """``check()``, or False while the live server holds the table.

    Embedded mode's test database is SQLite in memory with a shared cache, which the live server's thread
    and this one share: a read that meets the server's write gets SQLITE_LOCKED at once (no busy timeout
    applies to a shared cache), which only means "not yet"."""
    from django.db import OperationalError

    try:
        return check()
    except OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return False


def _unlocked(read: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``read()`` once the live server no longer holds the table (see ``_settled``): a late request of the
    closed page (its last beacon) may still be writing when the events the test waited for are in."""
    from django.db import OperationalError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return read()
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_page_view_ping_click_and_viewable_impression_reach_the_event_table_once(
    browser: Any, live_server: Any, article: Article, empty_buffer: None
) -> None:
    from tracking.models import Event

    page = _new_page(browser)
    page.goto(f"{live_server.url}/article/{article.slug}/")
    page_view_id = uuid.UUID(page.locator("body").get_attribute("data-page-view-id"))
    _dwell_on(page, ".ad-slot--in_article", ms=2400)  # >= 1 s fully visible, and a ping's worth of engagement
    link = page.locator(".most-list a").first
    next_slug = link.get_attribute("data-item-id")
    with page.expect_navigation():
        link.click()
    page.wait_for_timeout(1500)
    page.close()  # pagehide: the last batch goes by beacon

    def stored() -> bool:
        _flush_buffer()
        return (
            Event.objects.filter(type="click").exists()
            and Event.objects.filter(type="page_view", item_id=next_slug).exists()
            and Event.objects.filter(type="page_ping", item_id=article.slug).exists()
            and Event.objects.filter(type="ad_impression", item_id=article.slug).exists()
        )

    deadline = time.monotonic() + 20
    while not _settled(stored):
        assert time.monotonic() < deadline, "the tracker's events did not reach the Event table"
        time.sleep(0.25)

    def rows() -> dict[str, list[Event]]:
        first_page = Event.objects.filter(item_id=article.slug)
        return {
            "views": list(first_page.filter(type="page_view")),
            "clicks": list(Event.objects.filter(type="click")),
            "impressions": list(first_page.filter(type="ad_impression")),
            "pings": list(first_page.filter(type="page_ping")),
            "next_views": list(Event.objects.filter(type="page_view", item_id=next_slug)),
        }

    seen = _unlocked(rows)
    assert [v.event_id for v in seen["views"]] == [page_view_id]  # server-side and tracker copies: one row
    assert len(seen["clicks"]) == 1
    click = seen["clicks"][0]
    assert click.item_id == next_slug and click.url.endswith(f"/article/{next_slug}/")
    placements = [e.ad["placement"] for e in seen["impressions"]]
    assert "in_article" in placements and "footer" not in placements
    assert len(placements) == len(set(placements))  # once per slot per page view
    assert len(seen["pings"]) >= 1
    assert all(p.properties["engaged_ms"] >= 1000 for p in seen["pings"])
    assert len(seen["next_views"]) == 1


@pytest.mark.django_db(transaction=True)
def test_global_privacy_control_means_nothing_is_sent_or_stored(
    browser: Any, live_server: Any, article: Article, empty_buffer: None
) -> None:
    from tracking.models import Event

    page = _new_page(browser, gpc=True)
    collect_requests: list[str] = []
    page.on(
        "request", lambda request: collect_requests.append(request.url) if "/collect" in request.url else None
    )
    page.goto(f"{live_server.url}/article/{article.slug}/")
    _dwell_on(page, ".ad-slot--in_article", ms=2400)
    with page.expect_navigation():
        page.locator(".most-list a").first.click()
    page.wait_for_timeout(1500)
    storage = page.evaluate(
        "[localStorage.getItem('adsite_outbox'), sessionStorage.getItem('adsite_session')]"
    )
    page.close()
    _flush_buffer()

    assert collect_requests == []
    assert storage == [None, None]
    assert Event.objects.count() == 0
