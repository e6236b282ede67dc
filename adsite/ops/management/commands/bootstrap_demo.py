"""``manage.py bootstrap_demo``: what ``make run`` does after migrating, idempotent and quick when done.

1. Seed the demo publication (categories, articles; and ads once the ads app is there).
2. When no events exist yet: generate browsing traffic for simulated visitors and import it through the
   tracking pipeline (same validation and feature code as live traffic).
3. When no model is active: train the first models (activated by the registry's rule: only if they beat
   the best baseline on the validation slice, which serves otherwise), so a newcomer sees personalized
   interests at once.
4. In DEBUG only: a staff account for the dashboard (``admin`` / ``$ADSITE_ADMIN_PASSWORD`` or ``admin``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Seed the demo site, import demo traffic and train the first models, each only when missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--visitors", type=int, default=400, help="simulated visitors for the demo traffic")
        parser.add_argument("--skip-training", action="store_true", help="do not train the first models")

    def handle(self, *args: object, **options: Any) -> None:
        started = time.monotonic()
        call_command("seed_demo", verbosity=1)
        call_command("seed_ads", verbosity=1)
        self._demo_traffic(int(options["visitors"]))  # type: ignore[arg-type]
        if not options["skip_training"]:
            self._first_models()
        self._staff_account()
        self.stdout.write(self.style.SUCCESS(f"bootstrap_demo: ready in {time.monotonic() - started:.1f}s"))

    def _demo_traffic(self, visitors: int) -> None:
        from adsite.content.selectors import article_slugs_by_category
        from adsite.content.traffic import TrafficSpec, traffic_rows, traffic_write_csv
        from tracking.api import events_recorded

        if events_recorded():
            self.stdout.write("bootstrap_demo: events already recorded, no demo traffic generated")
            return
        path = Path(settings.VAR_DIR) / "demo" / "traffic.csv"
        count = traffic_write_csv(
            rows=traffic_rows(articles_by_category=article_slugs_by_category(), spec=TrafficSpec(visitors=visitors)),
            path=path,
        )
        self.stdout.write(f"bootstrap_demo: generated {count} page views by {visitors} visitors -> {path}")
        call_command("import_events", str(path))

    def _first_models(self) -> None:
        from inference.api import active_model_versions

        if active_model_versions():
            self.stdout.write("bootstrap_demo: models already active, not retraining")
            return
        # the registry's own rule, also for the first models: a model that does not beat the best
        # baseline on the validation slice is registered, and the baseline ranker serves instead
        call_command("train", activate="auto")

    def _staff_account(self) -> None:
        if not settings.DEBUG:
            return
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        if user_model.objects.filter(username="admin").exists():
            return
        password = os.environ.get("ADSITE_ADMIN_PASSWORD", "admin")
        user_model.objects.create_superuser("admin", "admin@example.invalid", password)
        self.stdout.write("bootstrap_demo: created staff account admin (DEBUG only; set ADSITE_ADMIN_PASSWORD)")
