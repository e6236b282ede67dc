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
        from tracking.buffer import buffer_enabled, pending_holders, stream_flush

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
            f"{result.duplicates} duplicates, {result.reclaimed} reclaimed "
            f"({result.reclaimed_dead} from flushes that died), {result.parked} parked as unstorable"
        )
        # What this run could not take: entries another flush still holds (delivered, not yet acknowledged).
        for holder in pending_holders():
            if holder.pending == 0:
                continue
            idle = options["reclaim_idle_ms"]
            self.stdout.write(
                f"flush_events: {holder.pending} entries still held by {holder.consumer} "
                f"({'alive' if holder.alive else 'dead'}, idle {holder.idle_ms / 1000:.1f} s): "
                + (
                    "a flush in progress; taken over if it stays idle for "
                    f"{(idle if idle is not None else self._default_idle()) / 1000:.0f} s "
                    "(--reclaim-idle-ms to take them now)"
                    if holder.alive
                    else "it died while this run finished; the next flush takes them over"
                )
            )

    @staticmethod
    def _default_idle() -> int:
        from tracking.conf import tracking_settings

        return int(tracking_settings().FLUSH_RECLAIM_IDLE_MS)
