"""demo_content_seed: the taxonomy and the generated publication, idempotent and deterministic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from adsite.content.models import Article, Category
from adsite.content.selectors import article_slugs_by_category, category_slugs
from adsite.content.services import demo_content_seed

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _snapshot() -> list[tuple]:
    return list(
        Article.objects.order_by("slug").values_list(
            "slug", "title", "category__slug", "summary", "body", "author", "published_at", "reading_minutes"
        )
    )


def test_seed_creates_a_tier1_taxonomy_and_at_least_300_articles_over_it() -> None:
    result = demo_content_seed(now=NOW)

    assert 25 <= Category.objects.count() <= 35
    assert result.articles_created == Article.objects.count() >= 300
    by_category = article_slugs_by_category()
    assert set(by_category) == set(category_slugs())  # every category has articles
    assert min(len(slugs) for slugs in by_category.values()) >= 10
    assert {"automotive", "sports", "travel", "technology-and-computing"} <= set(category_slugs())


def test_second_seed_run_creates_and_changes_nothing() -> None:
    demo_content_seed(now=NOW)
    before = _snapshot()

    again = demo_content_seed(now=datetime(2026, 9, 1, tzinfo=UTC))

    assert (again.categories_created, again.categories_updated, again.articles_created) == (0, 0, 0)
    assert _snapshot() == before


def test_seed_is_deterministic_for_a_seed_and_differs_for_another() -> None:
    demo_content_seed(articles_per_category=3, seed=5, now=NOW)
    first = _snapshot()
    Article.objects.all().delete()
    demo_content_seed(articles_per_category=3, seed=5, now=NOW)
    assert _snapshot() == first
    Article.objects.all().delete()
    demo_content_seed(articles_per_category=3, seed=6, now=NOW)
    assert [row[0] for row in _snapshot()] != [row[0] for row in first]


def test_generated_articles_read_like_articles() -> None:
    demo_content_seed(articles_per_category=4, now=NOW)
    for article in Article.objects.all():
        paragraphs = article.body.split("\n\n")
        assert len(paragraphs) >= 5
        assert "{" not in article.title + article.summary + article.body  # no unfilled template slots
        assert article.reading_minutes >= 2
        assert NOW.replace(year=2025, month=12) < article.published_at <= NOW


def test_seed_keeps_categories_created_elsewhere_and_restores_renamed_ones() -> None:
    Category.objects.create(slug="drama", name="Drama")  # e.g. a MovieLens genre from an import
    demo_content_seed(articles_per_category=1, now=NOW)
    Category.objects.filter(slug="sports").update(name="Sport!")

    result = demo_content_seed(articles_per_category=1, now=NOW)

    assert result.categories_updated == 1
    assert Category.objects.get(slug="sports").name == "Sports"
    assert Category.objects.filter(slug="drama").exists()


def test_seed_demo_command_reports_totals(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("seed_demo", "--articles-per-category", "2")
    call_command("seed_demo", "--articles-per-category", "2")

    out = capsys.readouterr().out.strip().splitlines()
    assert "0 articles created" in out[-1]
    assert f"{Article.objects.count()} articles in total" in out[-1]
