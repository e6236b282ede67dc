"""The site's pages: they render, carry a page view id shared with the server-side page_view, show
their named ad placements, and cost a bounded number of queries."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.test import Client
from django.utils.html import escape

from adsite.content import pages
from adsite.content.models import Article, Category
from adsite.content.services import demo_content_seed

pytestmark = pytest.mark.django_db

PAGE_VIEW_ID = re.compile(r'<body[^>]*data-page-view-id="([0-9a-f-]{36})"')


class RecordedPageViews:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> RecordedPageViews:
    """Stands in for tracking.api.page_view_record_server (the tracking app's own tests cover it)."""
    recorder = RecordedPageViews()
    monkeypatch.setattr(pages, "_server_recorder", lambda: recorder)
    return recorder


@pytest.fixture
def seeded() -> None:
    demo_content_seed(articles_per_category=12)


def _placements(html: str) -> list[str]:
    return re.findall(
        r'class="ad-slot[^"]*" data-placement="([a-z_]+)" data-creative-id="[^"]+" data-campaign-id="[^"]+"',
        html,
    )


def test_article_page_shows_the_article_its_placements_and_related_stories(
    client: Client, seeded: None, recorded: RecordedPageViews
) -> None:
    article = Article.objects.select_related("category").order_by("slug").first()
    response = client.get(f"/article/{article.slug}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert f'<h1 id="story-title" class="story__title">{escape(article.title)}</h1>' in html
    assert sorted(_placements(html)) == ["footer", "in_article", "leaderboard", "sidebar"]
    assert html.count('data-item-id="') >= 4  # related-article links carry their item id for click events
    assert f'data-item-id="{article.slug}" data-categories="{article.category.slug}"' in html


def test_each_rendered_page_records_one_server_page_view_under_the_id_it_embeds(
    client: Client, seeded: None, recorded: RecordedPageViews
) -> None:
    article = Article.objects.select_related("category").first()
    first = client.get(f"/article/{article.slug}/").content.decode()
    second = client.get(f"/article/{article.slug}/").content.decode()

    ids = [PAGE_VIEW_ID.search(first).group(1), PAGE_VIEW_ID.search(second).group(1)]
    assert ids[0] != ids[1]
    assert [call["event_id"] for call in recorded.calls] == [uuid.UUID(i) for i in ids]
    assert recorded.calls[0]["item_id"] == article.slug
    assert recorded.calls[0]["categories"] == [article.category.slug]
    assert recorded.calls[0]["url"] == f"http://testserver/article/{article.slug}/"


def test_a_failing_server_page_view_does_not_fail_the_page(
    client: Client, seeded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("database away")

    monkeypatch.setattr(pages, "_server_recorder", lambda: broken)
    assert client.get("/").status_code == 200


def test_home_lists_latest_stories_and_a_section_per_category(
    client: Client, seeded: None, recorded: RecordedPageViews
) -> None:
    html = client.get("/").content.decode()

    newest = Article.objects.order_by("-published_at", "-id").first()
    assert escape(newest.title) in html
    for category in Category.objects.all():
        assert f'id="section-{category.slug}"' in html
    assert _placements(html) == ["leaderboard", "sidebar", "footer"]
    assert recorded.calls[0]["item_id"] == "" and recorded.calls[0]["categories"] == []


def test_category_page_paginates_newest_first(
    client: Client, seeded: None, recorded: RecordedPageViews
) -> None:
    demo_content_seed(articles_per_category=20)  # more than one page (12 per page)
    category = Category.objects.get(slug="travel")
    ordered = list(Article.objects.filter(category=category).order_by("-published_at", "-id"))

    page1 = client.get("/category/travel/").content.decode()
    page2 = client.get("/category/travel/?page=2").content.decode()

    assert escape(ordered[0].title) in page1 and escape(ordered[0].title) not in page2
    assert escape(ordered[-1].title) in page2
    assert "Page 1 of 1" not in page1 and 'rel="next"' in page1
    assert _placements(page1) == ["leaderboard", "sidebar", "footer"]
    assert recorded.calls[0]["categories"] == ["travel"]


def test_unknown_article_and_category_are_404(
    client: Client, seeded: None, recorded: RecordedPageViews
) -> None:
    assert client.get("/article/no-such-story/").status_code == 404
    assert client.get("/category/no-such-section/").status_code == 404
    assert recorded.calls == []


@pytest.mark.parametrize("path", ["/", "/category/sports/", "/category/sports/?page=2", "ARTICLE", "/about/"])
def test_pages_cost_a_bounded_number_of_queries(
    client: Client, seeded: None, recorded: RecordedPageViews, django_assert_max_num_queries: Any, path: str,
    placements_answer: Any,
) -> None:
    if path == "ARTICLE":
        path = f"/article/{Article.objects.first().slug}/"
    # Content queries only (server-side page view stubbed, no ad provider: the ads app's own queries
    # are counted in tests/ads): fixed, whatever the number of articles.
    placements_answer(None)
    with django_assert_max_num_queries(4):
        assert client.get(path).status_code == 200


def test_consent_banner_only_where_consent_is_required_and_not_yet_given(
    client: Client, seeded: None, recorded: RecordedPageViews, settings: Any
) -> None:
    settings.TRACKING = {**settings.TRACKING, "CONSENT_REQUIRED": False}
    assert "data-consent-banner" not in client.get("/about/").content.decode()

    settings.TRACKING = {**settings.TRACKING, "CONSENT_REQUIRED": True}
    html = client.get("/about/").content.decode()
    assert re.search(r"data-consent-banner>", html)
    assert 'data-consent-choice="granted"' in html and 'data-consent-choice="denied"' in html
    assert '"consentRequired": true' in html

    client.cookies["adsite_consent"] = "denied"
    assert re.search(r"data-consent-banner hidden>", client.get("/about/").content.decode())


def test_tracker_config_is_rendered_as_json_without_inline_script(
    client: Client, seeded: None, recorded: RecordedPageViews, settings: Any
) -> None:
    settings.TRACKING = {**settings.TRACKING, "TRACKER_PING_SECONDS": 2.5}
    html = client.get("/about/").content.decode()

    assert '<script id="adsite-tracker-config" type="application/json">' in html
    assert '"pingSeconds": 2.5' in html and '"collectUrl": "/collect"' in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert all('type="application/json"' in attrs or body.strip() == "" for attrs, body in scripts)


def test_rendered_article_is_stored_as_one_server_page_view(
    client: Client, seeded: None, request: pytest.FixtureRequest, settings: Any
) -> None:
    from django.core.management import call_command

    from tracking.models import Event

    if settings.ADSITE_MODE == "services":
        request.getfixturevalue("redis_client")  # an empty event stream
    article = Article.objects.select_related("category").first()
    html = client.get(f"/article/{article.slug}/").content.decode()
    client.get(f"/article/{article.slug}/", headers={"Sec-GPC": "1"})
    if settings.ADSITE_MODE == "services":
        call_command("flush_events")

    stored = Event.objects.get()
    assert str(stored.event_id) == PAGE_VIEW_ID.search(html).group(1)
    assert (stored.type, stored.item_id, stored.categories) == ("page_view", article.slug, [article.category.slug])
