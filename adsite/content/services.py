"""Writes for the demo publication: seeding the taxonomy and the generated articles.

Promises: ``demo_content_seed`` is idempotent. Categories are matched by slug and articles by
slug; a second run with the same arguments creates and changes nothing, and costs two reads plus the
(pure, fast) text generation. Rows are written with ``bulk_create`` in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from adsite.content.generation import demo_articles
from adsite.content.models import Article, Category
from adsite.content.taxonomy import taxonomy_entries

DEFAULT_ARTICLES_PER_CATEGORY = 12
DEFAULT_SEED = 20240611


@dataclass(frozen=True, slots=True)
class SeedResult:
    categories_created: int
    categories_updated: int
    articles_created: int
    categories_total: int
    articles_total: int


def taxonomy_categories_sync() -> tuple[int, int]:
    """Create the taxonomy's categories that are missing and refresh changed names/descriptions.

    Returns (created, updated). Categories created elsewhere (imports) are left alone.
    """
    entries = taxonomy_entries()
    existing = {c.slug: c for c in Category.objects.filter(slug__in=[e.slug for e in entries])}
    missing = [
        Category(slug=e.slug, name=e.name, description=e.description)
        for e in entries
        if e.slug not in existing
    ]
    changed = []
    for entry in entries:
        category = existing.get(entry.slug)
        if category is not None and (category.name, category.description) != (entry.name, entry.description):
            category.name, category.description = entry.name, entry.description
            changed.append(category)
    Category.objects.bulk_create(missing, ignore_conflicts=True)
    if changed:
        Category.objects.bulk_update(changed, ["name", "description"])
    return len(missing), len(changed)


def demo_content_seed(
    *,
    articles_per_category: int = DEFAULT_ARTICLES_PER_CATEGORY,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
) -> SeedResult:
    """Seed the taxonomy and ``articles_per_category`` generated articles per taxonomy category.

    The text depends only on ``seed`` (and the taxonomy file); publication dates are spread over the
    months before ``now`` (default: the current hour), so a fresh install looks current while a
    re-run never touches rows that already exist.
    """
    anchor = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    with transaction.atomic():
        created, updated = taxonomy_categories_sync()
        generated = demo_articles(
            entries=taxonomy_entries(), per_category=articles_per_category, seed=seed, anchor=anchor
        )
        existing = set(
            Article.objects.filter(slug__in=[a.slug for a in generated]).values_list("slug", flat=True)
        )
        todo = [a for a in generated if a.slug not in existing]
        if todo:
            category_ids = dict(Category.objects.values_list("slug", "id"))
            Article.objects.bulk_create(
                [
                    Article(
                        slug=a.slug,
                        title=a.title,
                        category_id=category_ids[a.category_slug],
                        summary=a.summary,
                        body=a.body,
                        author=a.author,
                        published_at=a.published_at,
                        reading_minutes=a.reading_minutes,
                    )
                    for a in todo
                ],
                batch_size=500,
                ignore_conflicts=True,
            )
    return SeedResult(
        categories_created=created,
        categories_updated=updated,
        articles_created=len(todo),
        categories_total=Category.objects.count(),
        articles_total=Article.objects.count(),
    )
