"""``manage.py edge_model_export``: distil a trained model into the edge model file browsers score with.

    python manage.py edge_model_export --teacher var/models/<version> --events events.csv [--format movielens]

Builds training samples from the events (the teacher's own categories and candidate settings), fits the
edge model to the teacher's calibrated probabilities (``inference.models.edge``), and writes
``edge-model-<version>.json`` under ``INFERENCE["MODEL_DIR"]/edge/`` (served at ``/edge/model.json``).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.evaluation.reading import events_read
from inference.models import model_load
from inference.models.edge import edge_file_write, edge_model_distill
from inference.models.training import training_samples
from inference.rest.edge_views import edge_directory


class Command(BaseCommand):
    help = "Distil a trained model (its artifact directory) into the edge model file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--teacher", required=True, help="the trained model's artifact directory")
        parser.add_argument("--events", required=True, help="generic events CSV, or a MovieLens directory")
        parser.add_argument("--format", choices=("generic", "movielens"), default="generic")
        parser.add_argument("--horizon", type=int, default=10)
        parser.add_argument("--out", default=None, help="directory (default: MODEL_DIR/edge)")

    def handle(self, *args: Any, **options: Any) -> None:
        teacher_dir = Path(options["teacher"])
        try:
            teacher = model_load(teacher_dir)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot load the teacher {teacher_dir}: {exc}") from exc
        if not teacher.has_probabilities:
            raise CommandError(f"{teacher_dir}: the teacher has no calibration (retrain it with this version)")
        try:
            events = events_read(Path(options["events"]), format=options["format"])
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {options['events']}: {exc}") from exc
        self.stderr.write(f"building samples from {len(events)} events")
        data = training_samples(
            events,
            categories=teacher.categories,
            horizon=options["horizon"],
            validation="time",
            popular_k=teacher.popular_k,
            item_buckets=teacher.item_buckets,
        )
        version = "edge-" + teacher_dir.name + "-" + hashlib.sha256(teacher_dir.name.encode()).hexdigest()[:6]
        model = edge_model_distill(teacher, data, version=version)
        model.training["teacher"]["version"] = teacher_dir.name
        path = edge_file_write(model, Path(options["out"]) if options["out"] else edge_directory())
        size = len(gzip.compress(path.read_bytes()))
        self.stdout.write(
            f"wrote {path} ({path.stat().st_size} bytes, {size} gzipped); agreement with {teacher.algorithm} "
            f"on its validation slice: {model.training.get('validation_agreement')}"
        )
