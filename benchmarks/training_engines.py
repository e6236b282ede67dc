"""The two training engines side by side on one machine: ``local`` against ``dask`` (a LocalCluster).

    python -m benchmarks.training_engines [--events DIR] [--format movielens] [--users N] [--rounds 2]
        [--workers 2] [--gbdt-rounds 60] [--epochs 2] [--json OUT]

Each round builds the training set and fits LightGBM (a fixed number of rounds) and the neural model (a
fixed number of epochs) through each engine, the engines alternating (local, dask, then dask, local, ...)
so that a load that drifts over the run weighs on both alike. The work is fixed (early stopping cannot
end one engine's fit sooner than the other's), so the seconds compare the engines, not their stopping
points. Prints one JSON object: the seconds of each stage per engine and round with the load average
around each, the distributed builder's cost per event (the population pass and export on the driver,
the partition tasks on the workers), and the projection for 100M events on N workers from those costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import SHARED_DATA

SHARED = SHARED_DATA
PROJECTED_EVENTS = 100_000_000
PROJECTED_WORKERS = (2, 16, 64, 256)


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    import django

    django.setup()


def _round(engine: Any, events: list[Any], categories: list[str], args: argparse.Namespace) -> dict[str, Any]:
    from inference.models import model_fit, training_set_build

    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    training_set = training_set_build(events, categories=categories, horizon=10, validation="time", engine=engine)
    facts = training_set.facts
    stages: dict[str, Any] = {"training_set": round(time.perf_counter() - began, 2)}
    fixed = {
        "gbdt": {"objective": "binary", "max_rounds": args.gbdt_rounds, "early_stopping_rounds": args.gbdt_rounds},
        "neural": {"max_epochs": args.epochs, "patience": args.epochs},
    }
    for algorithm in ("gbdt", "neural"):
        started = time.perf_counter()
        model_fit(
            algorithm=algorithm,
            data=training_set.data,
            categories=categories,
            seed=0,
            device="cpu",
            hyperparameters=fixed[algorithm],
            engine=engine if engine.client is not None else None,
        )
        stages[algorithm] = round(time.perf_counter() - started, 2)
    stages["total"] = round(sum(stages.values()), 2)
    return {
        "engine": engine.name,
        "seconds": stages,
        "samples": facts["rows"],
        "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
        "training_set_facts": facts,
    }


def _projection(rounds: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    """100M events on N workers from the dask rounds' measured costs per event (medians)."""
    facts = [r["training_set_facts"] for r in rounds if r["engine"] == "dask"]
    per_event = {
        "population_pass_us": statistics.median(f["population_pass_seconds"] / f["events"] for f in facts) * 1e6,
        "export_us": statistics.median(f["export_seconds"] / f["events"] for f in facts) * 1e6,
        "partition_us": statistics.median(f["partition_seconds"]["total"] / f["events"] for f in facts) * 1e6,
    }
    serial_s = PROJECTED_EVENTS * (per_event["population_pass_us"] + per_event["export_us"]) / 1e6
    parallel_s = PROJECTED_EVENTS * per_event["partition_us"] / 1e6
    return {
        "measured_on_workers": workers,
        "cost_per_event": {k: round(v, 2) for k, v in per_event.items()},
        "events": PROJECTED_EVENTS,
        "driver_serial_minutes": round(serial_s / 60, 1),
        "partition_worker_hours": round(parallel_s / 3600, 2),
        "training_set_minutes_on": {
            str(n): round((serial_s + parallel_s / n) / 60, 1) for n in PROJECTED_WORKERS
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default=str(SHARED / "movielens-latest-small"))
    parser.add_argument("--format", default="movielens")
    parser.add_argument("--users", type=int, default=0, help="only the first N users (0: all)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gbdt-rounds", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    _django()
    from inference.evaluation.reading import events_read
    from inference.training.cluster import training_engine

    events = events_read(Path(args.events), format=args.format)
    if args.users:
        keep = set(sorted({e.user_id for e in events})[: args.users])
        events = [e for e in events if e.user_id in keep]
    categories = sorted({c for e in events for c in e.categories})
    rounds: list[dict[str, Any]] = []
    with training_engine("dask", workers=args.workers) as dask, training_engine("local") as local:
        for index in range(args.rounds):
            order = (local, dask) if index % 2 == 0 else (dask, local)
            for engine in order:
                result = _round(engine, events, categories, args)
                result["round"] = index + 1
                rounds.append(result)
                print(json.dumps({k: v for k, v in result.items() if k != "training_set_facts"}), flush=True)
    summary = {
        engine: {
            stage: statistics.median(r["seconds"][stage] for r in rounds if r["engine"] == engine)
            for stage in ("training_set", "gbdt", "neural", "total")
        }
        for engine in ("local", "dask")
    }
    report = {
        "machine": f"{os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "events": len(events),
        "users": len({e.user_id for e in events}),
        "workers": args.workers,
        "fixed_work": {"gbdt_rounds": args.gbdt_rounds, "epochs": args.epochs},
        "rounds": rounds,
        "median_seconds": summary,
        "speedup": {
            stage: round(summary["local"][stage] / summary["dask"][stage], 2) if summary["dask"][stage] else None
            for stage in summary["local"]
        },
        "projection": _projection(rounds, args.workers),
    }
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
