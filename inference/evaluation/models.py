"""Freshly trained models as evaluation scorers, and offline metrics for already-trained models.

``model_scorer(algorithm)`` trains on ``split.train`` only (its validation slice is carved from the
training side with the same kind of split), then scores every test case from the user's state
replayed over the training side at the case's prediction time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.evaluation.protocol import Split
from inference.evaluation.runner import Scorer, interests_evaluate
from inference.events import EventRecord
from inference.models import PairModel, model_fit, model_train, training_set_facts
from inference.models.inputs import users_at
from inference.models.prior import prior_train
from inference.models.training import TrainingData, samples_list, training_samples

if TYPE_CHECKING:
    from inference.training.cluster import TrainingEngine

__all__ = ["model_case_scores", "model_scorer", "model_scorers", "models_offline_metrics"]


def model_case_scores(model: PairModel, split: Split) -> np.ndarray:
    """Scores[case, category] (in the model's category order) for every case of ``split``: each test
    user's features at the case's prediction time, replayed from the training side only."""
    features = users_at(split.train, {case.user_id: case.prediction_ts for case in split.cases})
    samples = []
    for case in split.cases:
        user, population = features.get(case.user_id, (None, None))
        samples.append(model.inputs(case.user_id, user, population, case.prediction_ts))
    return model.scores_matrix(samples)


def model_scorers(
    algorithms: Sequence[str],
    *,
    horizon: int = 10,
    device: str = "auto",
    hyperparameters: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[str], Callable[[float, str], None] | None] = lambda name: None,
    engine: TrainingEngine | None = None,
) -> dict[str, Scorer]:
    """Scorers that train each algorithm fresh on ``split.train``; the training samples are built once
    and shared (their build time is reported as ``samples_seconds``). With a dask ``engine``
    (``inference.training.cluster``) the samples are built and the models trained on its cluster."""
    cache: dict[int, tuple[TrainingData, float]] = {}
    facts: dict[int, dict[str, Any]] = {}

    def data_for(split: Split, categories: Sequence[str], seed: int) -> tuple[TrainingData, float]:
        key = id(split)
        if key not in cache:
            cache.clear()
            report = progress("samples")
            if report:
                report(0.0, "building training samples")
            started = time.perf_counter()
            build = engine.samples_builder(progress=report) if engine is not None else samples_list
            data = training_samples(
                split.train,
                categories=categories,
                horizon=horizon,
                validation=split.kind,
                seed=seed,
                build=build,
            )
            seconds = time.perf_counter() - started
            cache[key] = (data, seconds)
            facts[key] = training_set_facts(data, build, seconds=seconds)
            if report:
                report(1.0, f"{len(data.fit)} fit / {len(data.validation)} validation samples")
        return cache[key]

    def make(algorithm: str) -> Scorer:
        def scorer(split: Split, categories: Sequence[str], seed: int) -> tuple[np.ndarray, dict[str, Any]]:
            if algorithm == "prior":
                started = time.perf_counter()
                model: PairModel = prior_train(events=split.train, categories=categories)
                samples_seconds = 0.0
            else:
                data, samples_seconds = data_for(split, categories, seed)
                started = time.perf_counter()
                model = model_fit(
                    algorithm=algorithm,
                    data=data,
                    categories=categories,
                    seed=seed,
                    device=device,
                    hyperparameters=(hyperparameters or {}).get(algorithm),
                    progress=progress(algorithm),
                    engine=engine,
                )
                model.training["training_set"] = facts.get(id(split))
            seconds = time.perf_counter() - started
            scores = model_case_scores(model, split)
            extra = {
                "train_seconds": round(seconds, 2),
                "samples_seconds": round(samples_seconds, 2),
                "training": model.training,
                "hyperparameters": model.hyperparameters,
                "probabilities": model.probabilities_matrix(scores),
            }
            return scores, extra

        return scorer

    return {algorithm: make(algorithm) for algorithm in algorithms}


def model_scorer(
    algorithm: str,
    *,
    horizon: int = 10,
    device: str = "auto",
    hyperparameters: Mapping[str, Any] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Scorer:
    """One algorithm trained fresh on ``split.train`` (samples built for it alone)."""

    def scorer(split: Split, categories: Sequence[str], seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        started = time.perf_counter()
        model = model_train(
            algorithm=algorithm,
            events=split.train,
            categories=categories,
            horizon=horizon,
            seed=seed,
            device=device,
            validation=split.kind,
            hyperparameters=hyperparameters,
            progress=progress,
        )
        seconds = time.perf_counter() - started
        scores = model_case_scores(model, split)
        extra = {
            "train_seconds": round(seconds, 2),
            "training": model.training,
            "hyperparameters": model.hyperparameters,
            "probabilities": model.probabilities_matrix(scores),
        }
        return scores, extra

    return scorer


def models_offline_metrics(
    models: Mapping[str, PairModel],
    *,
    events: Sequence[EventRecord],
    split: str = "time",
    quantile: float = 0.8,
    horizon: int = 10,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Metrics of already-trained ``models`` and the four baselines on the later slice of ``events``.

    The models must have been trained on events before the slice's cut-off only; the categories are
    mapped by name, so a model trained on a different category list still ranks correctly.
    """

    def as_scorer(model: PairModel) -> Scorer:
        def scorer(parts: Split, categories: Sequence[str], _: int) -> tuple[np.ndarray, dict[str, Any]]:
            own = model_case_scores(model, parts)
            own_probabilities = model.probabilities_matrix(own)
            position = {c: i for i, c in enumerate(model.categories)}
            scores = np.full((len(parts.cases), len(categories)), -1e9)
            probabilities = np.full(scores.shape, np.nan)
            for column, category in enumerate(categories):
                if category in position:
                    scores[:, column] = own[:, position[category]]
                    probabilities[:, column] = own_probabilities[:, position[category]]
            return scores, {"probabilities": probabilities}

        return scorer

    report = interests_evaluate(
        events,
        dataset="offline",
        split=split,
        quantile=quantile,
        horizon=horizon,
        seed=seed,
        scorers={name: as_scorer(model) for name, model in models.items()},
    )
    return {**report["results"], "test_users": report["test_users"]}
