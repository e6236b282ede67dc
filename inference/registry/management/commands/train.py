"""``manage.py train [--algorithm neural|gbdt|all] [--since ISO] [--until ISO] [--activate auto|always|never]
[--engine local|dask] [--scheduler tcp://HOST:8786] [--json OUT]``.

Trains fresh models on the recorded events, scores them on a later slice beside the baselines and
the active version, registers them and (by default) activates those that are not worse. Progress is
shown with tqdm; the same run is visible on the dashboard (TrainingRun). ``--engine dask`` builds the
training set and trains both models on a Dask cluster (the scheduler's, or a LocalCluster sized to this
machine); ``--json OUT`` writes the run's facts (engine, workers, partitions, training set, each model).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from inference.registry.training import ACTIVATE_CHOICES, ALGORITHMS, training_facts, training_run_execute
from inference.training.cluster import ENGINES


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
        parser.add_argument(
            "--engine", choices=ENGINES, default=None, help='default: INFERENCE["TRAINING_ENGINE"] (local)'
        )
        parser.add_argument(
            "--scheduler", default=None, help="Dask scheduler address, tcp://HOST:8786 (default: a LocalCluster)"
        )
        parser.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: one per core)")
        parser.add_argument("--json", dest="json_path", default=None, help="write the run's facts here")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["scheduler"] and options["engine"] == "local":
            raise CommandError("--scheduler needs --engine dask")
        engine = options["engine"] or ("dask" if options["scheduler"] else None)
        bar = tqdm(
            total=100, unit="%", desc="train", file=self.stderr._out, disable=options["verbosity"] == 0
        )

        def progress(stage: str, percent: float, message: str) -> None:
            # every message is shown (a distributed stage sends a few a second at most): the partitions
            # done, LightGBM's rounds, the network's epochs
            bar.set_description(stage, refresh=False)
            bar.n = max(bar.n, round(percent, 1))
            bar.set_postfix_str(message[:80], refresh=True)

        try:
            run = training_run_execute(
                algorithm=options["algorithm"],
                since=options.get("since"),
                until=options.get("until"),
                activate=options["activate"],
                progress=progress,
                engine=engine,
                scheduler=options["scheduler"],
                workers=options["workers"],
            )
        finally:
            bar.close()
        if options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps(training_facts(run), indent=2), encoding="utf-8")
        if run.status == run.Status.SKIPPED:
            raise CommandError("another training run is in progress")
        if run.status == run.Status.FAILED:
            raise CommandError(f"training failed (the active versions keep serving): {run.message}")
        for algorithm, outcome in run.outcome.items():
            if outcome["version"] is None:  # the blend, when its members could not be averaged
                self.stdout.write(self.style.WARNING(f"{algorithm}: none ({outcome['reason']})"))
                continue
            verdict = "activated" if outcome["activated"] else "registered as candidate"
            self.stdout.write(
                self.style.SUCCESS(f"{algorithm}: {outcome['version']} {verdict} ({outcome['reason']})")
            )
