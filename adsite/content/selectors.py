"""Reads for the demo publication. Every function issues a fixed, small number of queries,
whatever the number of categories or articles (no per-row queries; related rows via select_related).
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from adsite.content.models import Article, Category

# What article cards (lists, related stories) never show: the body is most of a row's bytes.
CARD_DEFERRED = ("body", "category__description", "category__parent")


def category_slugs() -> list[str]:
    return list(Category.objects.order_by("slug").values_list("slug", flat=True))


def category_sections() -> tuple[tuple[str, str], ...]:
    """(slug, name) of every category by name: the site navigation, as a hashable value (one query;
    the navigation's rendered HTML is cached on it, so a renamed or new category shows at once)."""
    return tuple(Category.objects.order_by("name").values_list("slug", "name"))


def category_get(*, slug: str) -> Category:
    """Raises ``Category.DoesNotExist`` when there is no such category."""
    return Category.objects.get(slug=slug)


def article_get(*, slug: str) -> Article:
    """Raises ``Article.DoesNotExist`` when there is no such article."""
    return Article.objects.select_related("category").get(slug=slug)


def articles_latest(*, limit: int) -> list[Article]:
    return list(
        Article.objects.select_related("category").defer(*CARD_DEFERRED).order_by("-published_at", "-id")[:limit]
    )


def articles_for_category(*, category: Category) -> QuerySet[Article]:
    """Newest first; the caller paginates (one COUNT and one page query)."""
    return (
        Article.objects.filter(category=category)
        .select_related("category")
        .defer(*CARD_DEFERRED)
        .order_by("-published_at", "-id")
    )


def articles_latest_per_category(*, per_category: int) -> list[tuple[Category, list[Article]]]:
    """The ``per_category`` newest articles of every category that has any, in one query.

    Categories come out in name order. A window function ranks articles within their category so the
    database returns only the rows shown.
    """
    ranked = (
        Article.objects.select_related("category")
        .defer(*CARD_DEFERRED)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=F("category_id"),
                order_by=(F("published_at").desc(), F("id").desc()),
            )
        )
        .filter(rank__lte=per_category)
        .order_by("category__name", "rank")
    )
    sections: dict[int, tuple[Category, list[Article]]] = {}
    for article in ranked:
        sections.setdefault(article.category_id, (article.category, []))[1].append(article)
    return list(sections.values())


def articles_related(*, article: Article, limit: int) -> list[Article]:
    """Newest other articles of the same category."""
    return list(
        Article.objects.filter(category_id=article.category_id)
        .exclude(pk=article.pk)
        .select_related("category")
        .defer(*CARD_DEFERRED)
        .order_by("-published_at", "-id")[:limit]
    )


def article_slugs_by_category() -> dict[str, list[str]]:
    """Category slug -> its article slugs (item ids), e.g. for generating demo traffic."""
    result: dict[str, list[str]] = defaultdict(list)
    for category_slug, slug in Article.objects.order_by("category__slug", "slug").values_list(
        "category__slug", "slug"
    ):
        result[category_slug].append(slug)
    return dict(result)
