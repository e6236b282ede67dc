"""``manage.py offpolicy_eval --json OUT``: the ad server's policy and a click model against the logged policies (``adsite.ads.offpolicy``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from adsite.ads.offpolicy import offpolicy_report


class Command(BaseCommand):
    help = ("IPW / SNIPW value of the ad server's own policy and of a click model's greedy policy on the Open Bandit "
            "random log, beside the logged random and Bernoulli-TS policies")

    def add_arguments(self, parser: CommandParser) -> None:
        shared = os.environ.get("ADSITE_SHARED_DATA") or Path(settings.BASE_DIR).parent / "shared" / "data"
        default = Path(shared) / "open-bandit-dataset-small"
        parser.add_argument("--data", default=str(default), help="the open-bandit-dataset-small folder")
        parser.add_argument("--campaign", default="all", choices=("all", "men", "women"))
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--draws", type=int, default=500,
                            help="decisions drawn per visitor to count the ad server's (Thompson) policy's probabilities")
        parser.add_argument("--json", dest="json_path", default="")

    def handle(self, *args: object, **options: Any) -> None:
        report = offpolicy_report(data_dir=Path(str(options["data"])), campaign=str(options["campaign"]),
                                  seed=int(options["seed"]), draws=int(options["draws"]))  # type: ignore[arg-type]
        text = json.dumps(report, indent=2)
        if options["json_path"]:
            Path(str(options["json_path"])).write_text(text + "\n")
        self.stdout.write(text)
