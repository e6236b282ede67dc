"""``manage.py event_partitions [--ahead N]``: create the events table's day partitions ahead and list them.

PostgreSQL only (SQLite keeps one plain table). Also run hourly by beat (``tracking.partitions_ensure``);
retention drops whole partitions through ``manage.py purge_events``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create the events table's day partitions ahead (PostgreSQL) and list them with their row estimates."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--ahead", type=int, default=None, help="days ahead of today (default TRACKING['PARTITIONS_AHEAD_DAYS'])"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from tracking.partitions import event_partitions, event_partitions_ensure, partitioned

        if not partitioned():
            self.stdout.write("the events table is not partitioned on this database (SQLite keeps one table)")
            return
        ahead = options["ahead"]
        if ahead is not None and ahead < 0:
            self.stderr.write("--ahead must be zero or more")
            raise SystemExit(2)
        created = event_partitions_ensure(ahead_days=ahead)
        self.stdout.write(f"created {len(created)} partitions" + (f": {', '.join(created)}" if created else ""))
        for part in event_partitions():
            rows = "not analysed" if part.rows < 0 else f"~{part.rows} rows"
            self.stdout.write(f"{part.name}  {part.day or 'DEFAULT'}  {rows}")
