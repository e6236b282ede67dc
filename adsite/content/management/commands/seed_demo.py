"""``manage.py seed_demo``: the demo publication's categories and generated articles (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from adsite.content.services import DEFAULT_ARTICLES_PER_CATEGORY, DEFAULT_SEED, demo_content_seed


class Command(BaseCommand):
    help = "Create the category taxonomy and the generated demo articles; a second run changes nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--articles-per-category", type=int, default=DEFAULT_ARTICLES_PER_CATEGORY)
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)

    def handle(self, *args: object, **options: Any) -> None:
        result = demo_content_seed(
            articles_per_category=int(options["articles_per_category"]),  # type: ignore[arg-type]
            seed=int(options["seed"]),  # type: ignore[arg-type]
        )
        self.stdout.write(
            f"seed_demo: {result.categories_created} categories created, {result.categories_updated} updated, "
            f"{result.articles_created} articles created; {result.categories_total} categories and "
            f"{result.articles_total} articles in total"
        )
