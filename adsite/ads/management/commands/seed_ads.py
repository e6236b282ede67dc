"""``manage.py seed_ads``: demo advertisers, campaigns, creatives (local SVG art) and placements."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from adsite.ads.services.demo import ads_demo_seed


class Command(BaseCommand):
    help = "Create ~40 demo campaigns from 20 advertisers across the categories; a second run changes nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: object, **options: Any) -> None:
        result = ads_demo_seed(seed=int(options["seed"]))  # type: ignore[arg-type]
        self.stdout.write(
            f"seed_ads: {result.created} rows created; {result.advertisers} advertisers, "
            f"{result.campaigns} campaigns, {result.creatives} creatives in total"
        )
