"""How much of LightGBM's retail figure is early-stopping noise, judged without the test users.

On a time-split file, the protocol's training side is split once more: the samples ``evaluate_interests``
would build from the events before its validation cut-off (an inner fit part and an inner validation
slice for early stopping), and the outer validation slice (the later points ``evaluate_interests``
validates on) as the held-out judge. For each patience and seed it trains the lambdarank booster as
``gbdt_fit`` does (default hyperparameters otherwise), and prints its best iteration and its NDCG@5 on
the inner slice and on the held-out slice, then the mean of the seeds' scores (bagging) and, with
``--refit``, one booster refitted on the inner fit and validation samples together for the first
seed's rounds (as many, and scaled by the rows). Nothing here reads the protocol's test users::

    DJANGO_DEBUG=1 python scripts/gbdt_stopping.py ../shared/data/taobao-userbehavior-dev/events.csv \
        --patience 60,200 --seeds 0,1,2 --refit
"""

from __future__ import annotations

import argparse
import os
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
django.setup()

import numpy as np  # noqa: E402

from inference.evaluation.protocol import split_events  # noqa: E402
from inference.evaluation.reading import events_read  # noqa: E402
from inference.evaluation.runner import split_categories  # noqa: E402
from inference.models import gbdt  # noqa: E402
from inference.models.training import TrainingData, ndcg_of_samples, training_samples  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events")
    parser.add_argument("--patience", default="60,200")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--refit", action="store_true")
    args = parser.parse_args()
    events = list(events_read(args.events, format="generic"))
    split = split_events(events, kind="time", quantile=0.8, horizon=10)
    categories, _ = split_categories(events, split)
    outer = training_samples(split.train, categories=categories, horizon=10, validation="time", seed=0)
    ordered = sorted(split.train, key=lambda e: e.ts)
    cutoff = float(np.quantile([e.ts for e in ordered], 0.85))  # training_samples' validation cut-off
    inner = training_samples(
        [e for e in ordered if e.ts < cutoff], categories=categories, horizon=10, validation="time", seed=0
    )
    held_out = outer.validation
    print(f"inner fit {len(inner.fit)}, inner validation {len(inner.validation)}, held out {len(held_out)}")
    category_feature = gbdt._category_feature(gbdt.DEFAULT_HYPERPARAMETERS, len(categories))

    def scores(booster: object, samples: list) -> list[np.ndarray]:
        model = gbdt.GbdtModel(
            booster=booster, categories=categories, popularity=outer.popularity, hyperparameters={}
        )
        return model.score_many(samples)

    seeds = [int(s) for s in args.seeds.split(",")]
    first_rounds = None
    for patience in (int(p) for p in args.patience.split(",")):
        params = {**gbdt.DEFAULT_HYPERPARAMETERS, "early_stopping_rounds": patience}
        bag: list[list[np.ndarray]] = []
        for seed in seeds:
            started = time.perf_counter()
            booster = gbdt._train_one(inner, "lambdarank", params, seed, category_feature=category_feature)
            first_rounds = first_rounds or booster.best_iteration
            bag.append(scores(booster, held_out))
            print(
                f"patience {patience} seed {seed}: best iteration {booster.best_iteration}, "
                f"inner validation {ndcg_of_samples(inner.validation, scores(booster, inner.validation)):.4f}, "
                f"held out {ndcg_of_samples(held_out, bag[-1]):.4f} ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        mean = [np.mean(z, axis=0) for z in zip(*bag, strict=True)]
        print(f"patience {patience}: mean of {len(bag)} seeds held out {ndcg_of_samples(held_out, mean):.4f}")
    if args.refit and first_rounds:
        both = TrainingData(list(inner.fit) + list(inner.validation), [], inner.popularity)
        scaled = round(first_rounds * len(both.fit) / len(inner.fit))
        for name, rounds in (("as many rounds", first_rounds), ("rounds scaled by rows", scaled)):
            params = {**gbdt.DEFAULT_HYPERPARAMETERS, "max_rounds": rounds}
            booster = gbdt._train_one(both, "lambdarank", params, seeds[0], category_feature=category_feature)
            print(
                f"refit on fit + validation, {name} ({rounds}): held out "
                f"{ndcg_of_samples(held_out, scores(booster, held_out)):.4f}"
            )


if __name__ == "__main__":
    main()
