"""``manage.py purge_events [--days N]``: the retention purge (also scheduled as ``tracking.purge_expired``)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from tracking.privacy import events_purge_expired


class Command(BaseCommand):
    help = "Delete events and quarantined rows older than the retention period (TRACKING['RETENTION_DAYS'])."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="override the retention period, in days")

    def handle(self, *args: object, **options: object) -> None:
        days = options["days"]
        if days is not None and int(days) < 0:  # type: ignore[call-overload]
            self.stderr.write("--days must be zero or more")
            raise SystemExit(2)
        result = events_purge_expired(days=days)  # type: ignore[arg-type]
        self.stdout.write(f"purged {result.events} events and {result.quarantined} quarantined rows")
