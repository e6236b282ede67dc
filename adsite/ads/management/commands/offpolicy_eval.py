"""``manage.py offpolicy_eval --json OUT``: the click model against the logged policies (``adsite.ads.offpolicy``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from adsite.ads.offpolicy import offpolicy_report


class Command(BaseCommand):
    help = "IPW / SNIPW value of a click model's greedy policy on the Open Bandit random log, beside random and bts."

    def add_arguments(self, parser: CommandParser) -> None:
        default = Path(settings.BASE_DIR).parent / "shared" / "data" / "open-bandit-dataset-small"
        parser.add_argument("--data", default=str(default), help="the open-bandit-dataset-small folder")
        parser.add_argument("--campaign", default="all", choices=("all", "men", "women"))
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", dest="json_path", default="")

    def handle(self, *args: object, **options: Any) -> None:
        report = offpolicy_report(data_dir=Path(str(options["data"])), campaign=str(options["campaign"]),
                                  seed=int(options["seed"]))  # type: ignore[arg-type]
        text = json.dumps(report, indent=2)
        if options["json_path"]:
            Path(str(options["json_path"])).write_text(text + "\n")
        self.stdout.write(text)
