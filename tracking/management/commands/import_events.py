"""``manage.py import_events FILE.csv`` / ``--format movielens DIR``: import an external clickstream.

Same validation as live traffic (bad rows quarantined), deterministic event ids (re-import stores
nothing twice), categories created as needed, a tqdm progress bar; see ``tracking.importing``.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm


class Command(BaseCommand):
    help = "Import events from a generic events CSV (EVALUATION.md) or a MovieLens directory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="generic CSV file, or MovieLens directory with --format movielens")
        parser.add_argument("--format", choices=("generic", "movielens"), default="generic")
        parser.add_argument(
            "--no-features", action="store_true", help="do not feed inference's online features"
        )
        parser.add_argument("--chunk-size", type=int, default=20_000, help="rows per transaction")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="processes that read and validate while this one writes "
            "(default: cores - 1, at least 2, at most 4; 0: a thread instead)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from tracking.importing import events_import, generic_rows, movielens_rows

        path = Path(options["path"])
        if options["format"] == "movielens":
            if not (path / "ratings.csv").is_file() or not (path / "movies.csv").is_file():
                raise CommandError(f"{path} must hold ratings.csv and movies.csv")
            rows = functools.partial(movielens_rows, path)
        else:
            if not path.is_file():
                raise CommandError(f"{path} is not a file")
            rows = functools.partial(generic_rows, path)
        bar = tqdm(
            unit="ev", unit_scale=True, desc="import", disable=options["no_progress"], file=self.stderr
        )
        started = time.perf_counter()
        cpu_started = time.process_time()
        try:
            result = events_import(
                rows=rows,
                observe=not options["no_features"],
                chunk_size=options["chunk_size"],
                progress=bar.update,
                workers=None if options["workers"] is None else max(0, options["workers"]),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        rate = result.rows / elapsed if elapsed > 0 else 0.0
        self.stdout.write(
            f"import_events: {result.rows} rows in {elapsed:.2f}s ({rate:,.0f} rows/s, {cpu:.2f}s CPU): "
            f"{result.accepted} stored, "
            f"{result.duplicates} duplicates, {result.quarantined} quarantined, "
            f"{result.categories_created} categories created"
        )
        if result.reasons:
            self.stdout.write(
                "quarantined by reason: "
                + ", ".join(f"{reason} {n}" for reason, n in result.reasons.items())
                + " (each row with its line number and detail: /dashboard/quality/)"
            )
