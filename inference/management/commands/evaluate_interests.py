"""``manage.py evaluate_interests``: the EVALUATION.md protocol on a clickstream file.

Trains fresh models on the training side only (the registry and the active models are not touched),
prints a table and optionally writes the JSON report.

``--engine dask [--scheduler tcp://HOST:8786]`` also trains the models through the Dask engine (the
distributed training-set builder, lightgbm.dask, torch.distributed) on the same split, and reports
them beside the local run's (``neural@dask``, ``gbdt@dask``), with each engine's facts and the
difference in NDCG@5 (``engines`` in the JSON report).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from inference.evaluation.arguments import evaluation_arguments_add
from inference.evaluation.models import model_scorers
from inference.evaluation.protocol import Split
from inference.evaluation.reading import ReadReport, events_read
from inference.evaluation.runner import interests_evaluate
from inference.events import EventRecord
from inference.training.cluster import ENGINES, training_engine


class Command(BaseCommand):
    help = "Evaluate interest prediction (neural, gbdt, their blend and the four baselines) on a clickstream file."

    def add_arguments(self, parser: CommandParser) -> None:
        evaluation_arguments_add(parser)
        parser.add_argument(
            "--models",
            default="neural,gbdt,blend",
            help="comma-separated: neural, gbdt, blend (the mean of their calibrated probabilities), prior, edge "
            "(the edge model distilled from gbdt; edge:neural from the network, edge:blend from the blend), "
            "prior:reading (the prior's probabilities without its fitted calibration)",
        )
        parser.add_argument("--device", default="auto", help="torch device for the neural model")
        parser.add_argument(
            "--hyperparameters",
            default=None,
            help='JSON object per model overriding its defaults, e.g. \'{"gbdt": {"num_leaves": 31}}\' (ablations)',
        )
        parser.add_argument(
            "--engine",
            choices=ENGINES,
            default="local",
            help="dask: also train through the Dask engine, reported beside the local run",
        )
        parser.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)")
        parser.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: one per core)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["events"])
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        models = [m.strip() for m in options["models"].split(",") if m.strip()]
        unknown = set(models) - {
            "neural", "gbdt", "blend", "prior", "prior:reading", "edge", "edge:gbdt", "edge:neural", "edge:blend"
        }
        if unknown:
            raise CommandError(f"unknown models: {sorted(unknown)}")
        try:
            hyperparameters = json.loads(options["hyperparameters"]) if options["hyperparameters"] else None
        except json.JSONDecodeError as exc:
            raise CommandError(f"--hyperparameters is not JSON: {exc}") from exc
        if hyperparameters is not None and not (
            isinstance(hyperparameters, dict) and all(isinstance(v, dict) for v in hyperparameters.values())
        ):
            raise CommandError('--hyperparameters takes an object per model, e.g. {"gbdt": {"num_leaves": 31}}')
        self.stderr.write(f"reading {path} ({options['format']})")
        read = ReadReport()
        try:
            events = events_read(path, format=options["format"], report=read)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        self._say_read(read, len(events))
        if not events:
            raise CommandError(f"{path}: no usable events")
        bars: dict[str, tqdm] = {}

        def progress(name: str):
            def report(fraction: float, message: str) -> None:
                bar = bars.get(name)
                if bar is None:
                    bar = bars[name] = tqdm(total=100, desc=name, unit="%", leave=True, file=self.stderr._out)
                bar.set_postfix_str(message)
                bar.update(round(fraction * 100) - bar.n)
                if fraction >= 1.0:
                    bar.close()

            return report

        if options["scheduler"] and options["engine"] != "dask":
            raise CommandError("--scheduler needs --engine dask")
        scorer_options: dict[str, Any] = {
            "horizon": options["horizon"],
            "device": options["device"],
            "hyperparameters": hyperparameters,
            "progress": progress,
        }
        with training_engine(
            options["engine"], scheduler=options["scheduler"], workers=options["workers"]
        ) as engine:
            scorers = model_scorers(models, **scorer_options)
            if engine.client is not None:
                self.stderr.write(f"dask engine: {engine.workers} workers, {engine.partitions} partitions")
                distributed = model_scorers(
                    [m for m in models if not m.startswith(("prior", "edge"))],
                    engine=engine,
                    **{**scorer_options, "progress": lambda name: progress(f"{name}@dask")},
                )
                scorers.update({f"{name}@dask": scorer for name, scorer in distributed.items()})
            report = interests_evaluate(
                events,
                dataset=options["dataset"] or path.name,
                split=options["split"],
                quantile=options["quantile"],
                horizon=options["horizon"],
                seed=options["seed"],
                scorers=scorers,
                log=lambda message: self.stderr.write(message),
                on_split=lambda parts: _test_users_check(parts, events, options, self.stderr.write),
            )
            if engine.client is not None:
                report["engines"] = _engines_facts(report, engine.facts())
        for bar in bars.values():
            bar.close()
        self.stdout.write(_table(report))
        if read.skipped:
            self.stdout.write(f"({len(read.skipped)} malformed rows of {path.name} left out: see above)")
        if options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps(report, indent=2), encoding="utf-8")
            self.stdout.write(f"wrote {options['json_path']}")


    def _say_read(self, read: ReadReport, n_events: int) -> None:
        if read.ignored_columns:
            self.stderr.write(f"ignored columns: {', '.join(read.ignored_columns)}")
        if read.ms_timestamps:
            self.stderr.write(
                f"{read.ms_timestamps} of {n_events} timestamps read as milliseconds (values >= 1e11)"
            )
        if read.skipped:
            reasons = Counter(reason for _line, reason, _detail in read.skipped)
            self.stderr.write(
                f"left out {len(read.skipped)} malformed rows ("
                + ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
                + "), kept "
                + str(n_events)
            )
            for line, _reason, detail in read.skipped[:5]:
                self.stderr.write(f"  line {line}: {detail}")
            if len(read.skipped) > 5:
                self.stderr.write(f"  ... and {len(read.skipped) - 5} more")


def _engines_facts(report: dict[str, Any], dask: dict[str, Any]) -> dict[str, Any]:
    """Each engine's facts (the train command's ``--json`` form) and the models' NDCG@5 difference."""
    results = report["results"]
    out: dict[str, Any] = {"local": {"engine": "local", "workers": 1, "partitions": 1}, "dask": dict(dask)}
    parity: dict[str, Any] = {}
    for name, result in results.items():
        if not name.endswith("@dask"):
            continue
        model = name.removesuffix("@dask")
        for engine, entry in (("local", results.get(model)), ("dask", result)):
            training = (entry or {}).get("training") or {}
            target = out[engine]
            target.setdefault("training_set", training.get("training_set"))
            target[model] = {**(training.get("engine") or {}), "seconds": entry.get("train_seconds") if entry else None}
        if model in results:
            parity[model] = {
                "local_ndcg@5": results[model]["ndcg@5"],
                "dask_ndcg@5": result["ndcg@5"],
                "difference": round(result["ndcg@5"] - results[model]["ndcg@5"], 4),
            }
    out["ndcg@5_difference"] = parity
    return out


FEW_TEST_USERS = 100  # below this, a difference of a few hundredths of NDCG is mostly sampling noise


def _test_users_check(
    parts: Split, events: list[EventRecord], options: dict[str, Any], warn: Callable[[str], None]
) -> None:
    """Nothing to evaluate: say why instead of a table of NaN; few test users: say so before the table."""
    if parts.cases:
        if len(parts.cases) < FEW_TEST_USERS:
            warn(
                f"warning: only {len(parts.cases)} test users (under {FEW_TEST_USERS}): read the 95% intervals, "
                "not the point estimates; a paired interval that includes 0 means no measurable difference"
            )
        return
    users = len({event.user_id for event in events})
    if options["split"] == "time":
        rule = (
            f"the time split tests users with at least 5 events before the {options['quantile']} quantile "
            "of timestamps and at least 1 at or after it"
        )
    else:
        rule = "the user split tests users with at least 30 events"
    raise CommandError(
        f"no test users: {rule} (and a category in their next {options['horizon']} events); "
        f"the file has {len(events)} usable events of {users} users. "
        + ("Try --split user." if options["split"] == "time" else "Try --split time.")
    )


def _table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['dataset']}, {report['split']} split, H={report['horizon']}: {report['test_users']} test users",
        f"{'ranker':<11} {'NDCG@5':>7} {'95% CI':>15} {'Recall@3':>9} {'AUC':>6} {'train s':>8} {'ECE':>6}",
    ]
    for name, result in report["results"].items():
        lo, hi = result["ndcg@5_ci"]
        train = result.get("train_seconds")
        ece = (result.get("calibration") or {}).get("ece")
        lines.append(
            f"{name:<11} {result['ndcg@5']:>7.3f} {f'{lo:.3f}-{hi:.3f}':>15} {result['recall@3']:>9.3f} "
            f"{result['auc']:>6.3f} {'' if train is None else f'{train:.1f}':>8} {'' if ece is None else f'{ece:.3f}':>6}"
        )
    best = report.get("best_vs_baseline")
    if best:
        lo, hi = best["ndcg@5_diff_ci"]
        lines.append(
            f"{best['model']} - {best['baseline']}: NDCG@5 {best['ndcg@5_diff']:+.3f} "
            f"(paired 95% CI {lo:+.3f} to {hi:+.3f}{', excludes 0' if best['excludes_zero'] else ', includes 0'})"
        )
    engines = report.get("engines")
    if engines:
        lines.append(f"{'model':<11} {'local':>7} {'dask':>7} {'diff':>7} {'local s':>8} {'dask s':>8}")
        for model, figures in engines["ndcg@5_difference"].items():
            local_s = (engines["local"].get(model) or {}).get("seconds")
            dask_s = (engines["dask"].get(model) or {}).get("seconds")
            lines.append(
                f"{model:<11} {figures['local_ndcg@5']:>7.3f} {figures['dask_ndcg@5']:>7.3f} "
                f"{figures['difference']:>+7.3f} {local_s if local_s is not None else '':>8} "
                f"{dask_s if dask_s is not None else '':>8}"
            )
    return "\n".join(lines)
