"""``manage.py flush_events``: drain the Redis Stream buffer into the Event table now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Flush buffered events (services mode) from the Redis Stream into the Event table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=None, help="entries per batch (TRACKING FLUSH_BATCH)"
        )
        parser.add_argument(
            "--reclaim-idle-ms",
            type=int,
            default=None,
            help="reclaim entries pending with another consumer for at least this long (default FLUSH_RECLAIM_IDLE_MS)",
        )
        parser.add_argument("--max-batches", type=int, default=None, help="stop after this many batches")

    def handle(self, *args: Any, **options: Any) -> None:
        from tracking.buffer import buffer_enabled, stream_flush

        if not buffer_enabled():
            self.stdout.write("flush_events: embedded mode writes events in the request; nothing is buffered")
            return
        result = stream_flush(
            batch_size=options["batch_size"],
            reclaim_idle_ms=options["reclaim_idle_ms"],
            max_batches=options["max_batches"],
        )
        self.stdout.write(
            f"flush_events: {result.entries} entries in {result.batches} batches, {result.inserted} inserted, "
            f"{result.duplicates} duplicates, {result.reclaimed} reclaimed"
        )
