"""``manage.py evaluate_serving --events FILE``: the protocol's split replayed through the served path.

The sibling of ``evaluate_interests`` (which trains fresh models and scores them offline): this one
imports the training side through tracking (validation, the events table, the online feature store),
runs ``train`` with its defaults (the registry and its activation rule), asks the predictor for every
test user's interests with the clock at the cut-off (and, with ``--later-days``, again that many days
later), and reports the served NDCG@5 beside the offline scores of the same artifacts and the
baselines, by the ranker that served and by the time since the visitor's last event
(``inference.evaluation.serving``). It writes to the configured database, store and MODEL_DIR, so it
refuses to run where events or model versions exist: point it at a scratch database, e.g.
``DATABASE_URL=sqlite:///var/serving-eval.sqlite3 INFERENCE_MODEL_DIR=var/serving-eval-models``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.api import EventRecord, evaluation_arguments_add
from tracking import api as tracking_api


def _events_import(events: Sequence[EventRecord]) -> None:
    """Import ``events`` the way ``import_events`` does a generic CSV (the site's own import)."""
    import csv
    import functools

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "events.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["user_id", "item_id", "categories", "timestamp", "type"])
            for event in events:
                writer.writerow(
                    [event.user_id, event.item_id, "|".join(event.categories), repr(event.ts), event.type]
                )
        result = tracking_api.events_import(rows=functools.partial(tracking_api.generic_rows, path), workers=0)
    if result.quarantined:
        raise CommandError(f"the import quarantined {result.quarantined} rows: {dict(result.reasons)}")


class Command(BaseCommand):
    help = "Replay a split through import, train, the registry, the online store and the predictor; score it."

    def add_arguments(self, parser: CommandParser) -> None:
        evaluation_arguments_add(parser)  # the same split options as evaluate_interests
        parser.add_argument(
            "--later-days",
            default="",
            help="comma-separated: serve the same cases again this many days after the cut-off (e.g. 1,7,30,365)",
        )
        parser.add_argument(
            "--budget-ms",
            type=float,
            default=None,
            help="the prediction deadline (default INFERENCE_BUDGET_MS; the served ranker is reported either way)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from inference.api import events_read, model_versions, serving_evaluate, serving_table

        path = Path(options["events"])
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        if tracking_api.events_recorded() or model_versions(limit=1):
            raise CommandError(
                "this database already holds events or model versions: evaluate_serving imports and trains "
                "into it; run it on a scratch database (DATABASE_URL=sqlite:///var/serving-eval.sqlite3, "
                "after manage.py migrate) with its own INFERENCE_MODEL_DIR"
            )
        try:
            later = [float(x) * 86_400.0 for x in options["later_days"].split(",") if x.strip()]
        except ValueError as exc:
            raise CommandError(f"--later-days: {exc}") from exc
        events = events_read(path, format=options["format"])
        try:
            report = serving_evaluate(
                events,
                import_events=_events_import,
                dataset=options["dataset"] or path.name,
                split=options["split"],
                quantile=options["quantile"],
                horizon=options["horizon"],
                seed=options["seed"],
                delays_s=(0.0, *later),
                budget_ms=options["budget_ms"],
                log=lambda message: self.stderr.write(message),
            )
        except (ValueError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(serving_table(report))
        for label, entry in (report.get("later") or {}).items():
            self.stdout.write(f"--- served {label} after the cut-off")
            self.stdout.write(serving_table({**report, **entry, "dataset": report["dataset"]}))
        if options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps(report, indent=2), encoding="utf-8")
            self.stdout.write(f"wrote {options['json_path']}")
