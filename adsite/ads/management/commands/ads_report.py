"""``manage.py ads_report [--json] [--since ISO-TIME]``: what each campaign would be invoiced for.

Impressions served, viewable and billed, clicks billed, spend and budget per campaign, and the invalid
impressions and clicks that were refused (by reason: bot, unknown_serve, wrong_visitor, replay, expired,
rate), from the ads ledger's hourly counters (``adsite.ads.selectors.ads_report``). ``--since`` counts
from the start of that hour (UTC when the time has no offset); without it, everything kept
(``ADS["REPORT_RETENTION_DAYS"]``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from adsite.ads.accounting import LedgerUnavailable
from adsite.ads.selectors import ads_report


def _since(value: str | None) -> float | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--since: not an ISO-8601 time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Command(BaseCommand):
    help = "Per-campaign delivery, billing and invalid traffic: what an advertiser is invoiced from."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--since", default=None, help="ISO-8601 time to count from (its hour)")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _since(options["since"])
        try:
            report = ads_report(since=since)
        except LedgerUnavailable as exc:
            raise CommandError(f"the ads ledger cannot be read: {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        header = f"{'id':>5}  {'campaign':<40} {'served':>9} {'viewable':>9} {'billed':>9} {'inv.imp':>8} {'clicks':>7} {'inv.clk':>8} {'spend':>14} {'budget':>14}"
        self.stdout.write(header)
        rows = [*report["campaigns"], {"id": "", "name": "total", **report["totals"]}]
        for row in rows:
            self.stdout.write(
                f"{row['id']!s:>5}  {row['name'][:40]:<40} {row['impressions_served']:>9} {row['impressions_viewable']:>9} "
                f"{row['impressions_billed']:>9} {sum(row['impressions_invalid'].values()):>8} {row['clicks_billed']:>7} "
                f"{sum(row['clicks_invalid'].values()):>8} {row['spend']:>14} {row['budget']:>14}"
            )
        edge = report["chosen_on_device"]
        if edge:
            least = report["chosen_on_device_min_audience"]
            self.stdout.write(f"\nchosen on visitors' devices (edge mode; per creative once served {least} times):")
            for row in edge:
                counts = (
                    f"served {row['served']}, viewable {row['viewable']}, clicks {row['clicks']}"
                    if row["reported"] else f"fewer than {least} impressions: not reported"
                )
                self.stdout.write(f"  creative {row['creative_id']} (campaign {row['campaign_id']}): {counts}")
