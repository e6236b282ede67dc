"""Which validation slice ranks the learned rankers as the held-out test users do (a time-split file)?

Trains neural and gbdt as ``manage.py train`` judges them (on the imported training side's events
before its slice's cut-off, default hyperparameters), then scores both, paired, on: the slice at its
cut-off; the slice's visitors split by their time since the last event; the slice N days later (every
visitor returning after that long) and pooled over those times; and the protocol's test users, at the
cut-off and a year later. Writes a JSON report (per entry: mean NDCG@5 of each ranker, neural - gbdt
and its paired 95% interval)::

    DJANGO_DEBUG=1 python scripts/validation_slices.py ../shared/data/taobao-userbehavior-dev/events.csv out.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
django.setup()

import numpy as np  # noqa: E402

from inference.conf import inference_setting  # noqa: E402
from inference.evaluation.metrics import paired_bootstrap_interval  # noqa: E402
from inference.evaluation.models import trained_scorer  # noqa: E402
from inference.evaluation.protocol import Split, split_by_time, split_events  # noqa: E402
from inference.evaluation.reading import events_read  # noqa: E402
from inference.evaluation.runner import split_categories, split_results  # noqa: E402
from inference.models import model_train  # noqa: E402

DAY = 86_400.0


def main(path: str, out: str) -> None:
    events = list(events_read(path, format="generic"))
    test = split_events(events, kind="time", quantile=0.8, horizon=10)
    imported = list(test.train)  # what a site running since then would hold
    fraction = float(inference_setting("EVAL_FRACTION"))
    slice_ = split_by_time(imported, quantile=1.0 - fraction, horizon=10)
    categories = sorted({c for e in imported for c in e.categories})
    models = {}
    for algorithm in ("neural", "gbdt"):
        started = time.time()
        models[algorithm] = model_train(
            algorithm=algorithm,
            events=slice_.train,
            categories=categories,
            horizon=10,
            device=str(inference_setting("DEVICE")),
            hyperparameters=dict((inference_setting("HYPERPARAMETERS") or {}).get(algorithm, {})),
        )
        print(f"{algorithm} trained in {time.time() - started:.0f} s", flush=True)

    def per_case(split: Split, source: list) -> dict[str, np.ndarray]:
        """NDCG@5 per test user of both models and two baselines (the runner's scoring)."""
        names, tiebreak = split_categories(source, split)
        scorers = {name: trained_scorer(model) for name, model in models.items()}
        results = split_results(split, names, tiebreak, scorers, seed=0, baselines=("decayed", "frequency"))
        return {name: result.ndcg for name, result in results.items()}

    def later(split: Split, delay: float) -> Split:
        cases = tuple(replace(c, prediction_ts=c.prediction_ts + delay) for c in split.cases)
        return replace(split, cases=cases)

    def summary(scores: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict:
        chosen = {k: (v if mask is None else v[mask]) for k, v in scores.items()}
        lo, hi = paired_bootstrap_interval(chosen["neural"], chosen["gbdt"], seed=0)
        return {
            "users": len(chosen["neural"]),
            **{k: round(float(np.nanmean(v)), 4) for k, v in chosen.items()},
            "neural-gbdt": round(float(np.nanmean(chosen["neural"] - chosen["gbdt"])), 4),
            "ci": [round(lo, 4), round(hi, 4)],
        }

    report: dict = {"fraction": fraction, "slice_cutoff": slice_.cutoff, "test_cutoff": test.cutoff}
    at = per_case(slice_, imported)
    report["slice"] = summary(at)
    gaps = np.array([slice_.cutoff - c.history[-1].ts for c in slice_.cases])
    report["slice, last event within 1 day"] = summary(at, gaps < DAY)
    report["slice, last event over 1 day"] = summary(at, gaps >= DAY)
    pooled = {k: [v] for k, v in at.items()}
    for days in (1, 7, 30, 365):
        scored = per_case(later(slice_, days * DAY), imported)
        report[f"slice +{days}d"] = summary(scored)
        for k, v in scored.items():
            pooled[k].append(v)
    report["slice, pooled over 0/1/7/30/365 d"] = summary({k: np.concatenate(v) for k, v in pooled.items()})
    report["test (these models)"] = summary(per_case(test, events))
    report["test +365d (these models)"] = summary(per_case(later(test, 365 * DAY), events))
    text = json.dumps(report, indent=1)
    print(text)
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(text)


if __name__ == "__main__":
    main(*sys.argv[1:3])
