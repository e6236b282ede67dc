"""``manage.py demo_traffic --out FILE.csv``: write simulated visitors' browsing as a generic events file.

The same generator ``make run`` imports; the file can be imported (``import_events``) or evaluated
(``evaluate_interests --events FILE.csv``) like any external clickstream. Pass ``--end-ts`` to make the
file reproducible byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from adsite.content.selectors import article_slugs_by_category
from adsite.content.traffic import TrafficSpec, traffic_rows, traffic_write_csv


class Command(BaseCommand):
    help = "Write generated demo browsing traffic as a generic events CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--visitors", type=int, default=400)
        parser.add_argument("--days", type=int, default=45)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--end-ts", type=int, default=0, help="last event time, unix seconds (default: now)")

    def handle(self, *args: object, **options: object) -> None:
        articles = article_slugs_by_category()
        if not articles:
            raise CommandError("no articles: run `manage.py seed_demo` first")
        spec = TrafficSpec(visitors=int(options["visitors"]), days=int(options["days"]),  # type: ignore[call-overload]
                           seed=int(options["seed"]), end_ts=int(options["end_ts"]))  # type: ignore[call-overload]
        out = Path(options["out"])  # type: ignore[arg-type]
        count = traffic_write_csv(rows=traffic_rows(articles_by_category=articles, spec=spec), path=out)
        self.stdout.write(f"demo_traffic: {count} page views by {spec.visitors} visitors -> {out}")
