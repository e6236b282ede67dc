"""``manage.py simulate --json OUT``: the four-policy lift simulation (see ``adsite.ads.simulation``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from adsite.ads.simulation import POLICIES, WORLDS, SimulationSpec, simulate


class Command(BaseCommand):
    help = "Simulated visitors browse the site through its HTTP endpoints; compares random, untargeted, adsite, oracle."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", dest="json_path", default="", help="write the report here")
        parser.add_argument("--visitors", type=int, default=SimulationSpec.visitors)
        parser.add_argument("--pages", type=int, default=SimulationSpec.pages)
        parser.add_argument("--seed", type=int, default=SimulationSpec.seed)
        parser.add_argument("--concentration", type=float, default=SimulationSpec.concentration)
        parser.add_argument("--base-ctr", type=float, default=SimulationSpec.base_ctr)
        parser.add_argument("--warmup", type=int, default=SimulationSpec.warmup, help="pages read before ad slots count")
        parser.add_argument("--history", type=int, default=SimulationSpec.history,
                            help="earlier visitors (adsite's policy) whose creative statistics every policy starts from")
        parser.add_argument("--world", choices=WORLDS, default=SimulationSpec.world,
                            help="the hidden click model: default (appeal x interest, the form the selector assumes), "
                                 "logistic (threshold in interest, position bias, ad fatigue), drift (interests move within the visit)")
        parser.add_argument("--train", action="store_true", help="train the first models when none is active")

    def handle(self, *args: object, **options: Any) -> None:
        from adsite.ads.models import Campaign
        from adsite.content.models import Article
        from adsite.content.selectors import article_slugs_by_category
        from inference.api import active_model_versions
        from tracking.api import events_recorded

        if not Article.objects.exists():
            call_command("seed_demo", verbosity=0)
        if not Campaign.objects.exists():
            call_command("seed_ads", verbosity=0)
        if not events_recorded():  # a site with readers: demo traffic (and models with --train)
            call_command("bootstrap_demo", skip_training=not options["train"], verbosity=0)
        elif options["train"] and not active_model_versions():
            call_command("train", activate="always")
        if settings.INFERENCE["STORE"] == "memory":  # this process's store starts empty: replay the history
            call_command("features_rebuild", verbosity=0)
        spec = SimulationSpec(
            visitors=int(options["visitors"]), pages=int(options["pages"]), seed=int(options["seed"]),
            concentration=float(options["concentration"]), base_ctr=float(options["base_ctr"]),
            warmup=int(options["warmup"]),
            history=int(options["history"]), world=str(options["world"]),
        )
        bar = tqdm(total=spec.visitors * len(POLICIES) + spec.history, desc="visitors", disable=int(options["verbosity"]) < 1)
        # thousands of simulated page views and clicks: their INFO lines would bury the progress bar
        quiet = int(options["verbosity"]) < 2
        if quiet:
            logging.disable(logging.INFO)
        try:
            report = simulate(spec=spec, articles=article_slugs_by_category(), progress=lambda policy, v: bar.update(1))
        finally:
            if quiet:
                logging.disable(logging.NOTSET)
            bar.close()
        text = json.dumps(report, indent=2)
        if options["json_path"]:
            Path(str(options["json_path"])).write_text(text + "\n")
        for policy, row in report["policies"].items():
            self.stdout.write(f"{policy:>11}: CTR {row['ctr']:.4f} [{row['ctr_ci'][0]:.4f}, {row['ctr_ci'][1]:.4f}] "
                              f"lift over random {row['lift_over_random']:+.4f} ({row['clicks']}/{row['impressions']})")
        self.stdout.write(f"adsite reaches {report['adsite_share_of_oracle_lift']} of the oracle's lift "
                          f"(95% CI {report['adsite_share_of_oracle_lift_ci']}; "
                          f"{report['adsite_share_of_oracle_lift_expected']} on expected CTR, "
                          f"CI {report['adsite_share_of_oracle_lift_expected_ci']}); bar met: {report['bar_met']}")
