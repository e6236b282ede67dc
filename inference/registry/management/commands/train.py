"""``manage.py train [--algorithm neural|gbdt|all] [--since ISO] [--until ISO] [--activate auto|always|never]``.

Trains fresh models on the recorded events, scores them on a later slice beside the baselines and
the active version, registers them and (by default) activates those that are not worse. Progress is
shown with tqdm; the same run is visible on the dashboard (TrainingRun).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from inference.registry.training import ACTIVATE_CHOICES, ALGORITHMS, training_run_execute


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Train interest models, evaluate them on a later slice, register and maybe activate them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--algorithm", choices=[*ALGORITHMS, "all"], default="all")
        parser.add_argument("--since", type=_when, help="first event time (ISO-8601, UTC if no zone)")
        parser.add_argument("--until", type=_when, help="last event time (ISO-8601, UTC if no zone)")
        parser.add_argument("--activate", choices=ACTIVATE_CHOICES, default="auto")

    def handle(self, *args: Any, **options: Any) -> None:
        bar = tqdm(
            total=100, unit="%", desc="train", file=self.stderr._out, disable=options["verbosity"] == 0
        )

        def progress(stage: str, percent: float, message: str) -> None:
            bar.set_description(stage)
            bar.set_postfix_str(message[:60], refresh=False)
            bar.update(max(0.0, round(percent, 1) - bar.n))

        try:
            run = training_run_execute(
                algorithm=options["algorithm"],
                since=options.get("since"),
                until=options.get("until"),
                activate=options["activate"],
                progress=progress,
            )
        finally:
            bar.close()
        if run.status == run.Status.SKIPPED:
            raise CommandError("another training run is in progress")
        if run.status == run.Status.FAILED:
            raise CommandError(f"training failed (the active versions keep serving): {run.message}")
        for algorithm, outcome in run.outcome.items():
            verdict = "activated" if outcome["activated"] else "registered as candidate"
            self.stdout.write(
                self.style.SUCCESS(f"{algorithm}: {outcome['version']} {verdict} ({outcome['reason']})")
            )
