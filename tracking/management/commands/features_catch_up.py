"""``manage.py features_catch_up``: apply now the feature updates that failed while the feature store
was unreachable (also the Celery beat task ``tracking.features_catch_up``; see ``tracking.features_backlog``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Apply the backlogged online feature updates (events accepted while the feature store was down)."

    def handle(self, *args: Any, **options: Any) -> None:
        from tracking.features_backlog import features_catch_up
        from tracking.selectors import feature_backlog_size

        result = features_catch_up()
        self.stdout.write(
            f"features_catch_up: {result.applied} applied, {result.waiting} waiting for the flush, "
            f"{result.dropped} dropped, {feature_backlog_size()} left"
        )
        if result.store_unavailable:
            raise CommandError("the feature store is still unreachable; the backlog is kept")
