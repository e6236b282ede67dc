"""``manage.py ledger [--json]``: counts a person can reconcile.

``received = stored + duplicates + sum(quarantined) + buffered + deleted + deleted_quarantine``;
``unaccounted`` is the difference (0 when everything reconciles). See ``tracking.selectors``.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Print the tracking ledger: received = stored + duplicates + quarantined + buffered (+ deleted)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        from tracking.selectors import ledger_get

        ledger = ledger_get()
        if options["json"]:
            self.stdout.write(json.dumps(ledger, sort_keys=False))
            return
        width = max(len(key) for key in ledger) + 2
        for key, value in ledger.items():
            if isinstance(value, dict):
                self.stdout.write(f"{key:<{width}}{sum(value.values())}")
                for reason, n in value.items():
                    self.stdout.write(f"  {reason:<{width - 2}}{n}")
            else:
                self.stdout.write(f"{key:<{width}}{value}")
