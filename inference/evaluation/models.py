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
from inference.models import PairModel, TrainingSet, model_fit, model_train, training_set_build
from inference.models.base import NOT_A_CANDIDATE
from inference.models.blend import BLEND_MEMBERS, BlendModel
from inference.models.edge import edge_model_distill
from inference.models.inputs import Sample, users_at
from inference.models.prior import prior_train
from inference.models.training import TrainingData

if TYPE_CHECKING:
    from inference.training.cluster import TrainingEngine

__all__ = ["model_case_scores", "model_scorer", "model_scorers", "models_offline_metrics", "trained_scorer"]


def model_case_scores(model: PairModel, split: Split) -> np.ndarray:
    """Scores[case, category] (in the model's category order) for every case of ``split``: each test
    user's features at the case's prediction time, replayed from the training side only."""
    return model.scores_matrix(_case_samples(model, split))


def _case_samples(model: PairModel, split: Split) -> list[Sample]:
    features = users_at(split.train, {case.user_id: case.prediction_ts for case in split.cases})
    samples = []
    for case in split.cases:
        user, population = features.get(case.user_id, (None, None))
        samples.append(model.inputs(case.user_id, user, population, case.prediction_ts))
    return samples


def _samples_probabilities(model: PairModel, samples: Sequence[Sample]) -> np.ndarray:
    """Probabilities[case, category] as served (``sample_probabilities``: the prior's calibration reads
    the visitor's history length too); NaN for non-candidates."""
    out = np.full((len(samples), len(model.categories)), np.nan)
    for row, (sample, scores) in enumerate(zip(samples, model.score_many(samples), strict=True)):
        if sample.candidates.size:
            out[row, sample.candidates] = model.sample_probabilities(sample, scores)
    return out


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
    cache: dict[int, TrainingSet] = {}

    def data_for(split: Split, categories: Sequence[str], seed: int) -> tuple[TrainingData, float]:
        key = id(split)
        if key not in cache:
            cache.clear()
            report = progress("samples")
            if report:
                report(0.0, "building training samples")
            cache[key] = training_set_build(
                split.train, categories=categories, horizon=horizon, validation=split.kind, seed=seed,
                engine=engine, progress=report,
            )
            if report:
                report(1.0, f"{len(cache[key].data.fit)} fit / {len(cache[key].data.validation)} validation samples")
        return cache[key].data, cache[key].facts["seconds"]

    trained: dict[tuple[int, str], PairModel] = {}

    def fit(algorithm: str, split: Split, categories: Sequence[str], seed: int) -> PairModel:
        """The algorithm trained on the split's training side, once per split (the edge model's teacher
        is the one the report shows); ``blend``: the mean of the learned models trained so."""
        if algorithm == "blend":
            return BlendModel([fit(name, split, categories, seed) for name in BLEND_MEMBERS])
        key = (id(split), algorithm)
        if key not in trained:
            data_for(split, categories, seed)
            if any(k[0] != id(split) for k in trained):
                trained.clear()  # one split's models at a time
            trained[key] = model_fit(
                algorithm=algorithm,
                data=cache[id(split)],
                categories=categories,
                seed=seed,
                device=device,
                hyperparameters=(hyperparameters or {}).get(algorithm),
                progress=progress(algorithm),
                engine=engine,
            )
        return trained[key]

    def make(algorithm: str) -> Scorer:
        def scorer(split: Split, categories: Sequence[str], seed: int) -> tuple[np.ndarray, dict[str, Any]]:
            if algorithm.startswith("edge"):
                return edge_scores(split, categories, seed, teacher=algorithm.partition(":")[2] or "gbdt")
            if algorithm in ("prior", "prior:reading"):
                # calibrated as served: fitted on the training side's validation slice (``prior:reading``:
                # the horizon-share reading alone, the calibration's starting point)
                started = time.perf_counter()
                model: PairModel = prior_train(events=split.train, categories=categories)
                samples_seconds = 0.0
                if algorithm == "prior":
                    data, samples_seconds = data_for(split, categories, seed)
                    started = time.perf_counter()
                    if data.validation:
                        model.calibrate(data.validation)
            else:
                _, samples_seconds = data_for(split, categories, seed)
                started = time.perf_counter()
                model = fit(algorithm, split, categories, seed)
            seconds = time.perf_counter() - started
            if isinstance(model, BlendModel):  # its training is its members' (shared with their own rows)
                seconds = sum(float(m.training.get("train_seconds") or 0.0) for m in model.members)
            samples = _case_samples(model, split)
            scores = model.scores_matrix(samples)
            probabilities = (
                _samples_probabilities(model, samples) if model.has_probabilities
                else model.probabilities_matrix(scores)
            )
            extra = {
                "train_seconds": round(seconds, 2),
                "samples_seconds": round(samples_seconds, 2),
                "training": model.training,
                "hyperparameters": model.hyperparameters,
                "probabilities": probabilities,
            }
            return scores, extra

        return scorer

    def edge_scores(
        split: Split, categories: Sequence[str], seed: int, *, teacher: str
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """The edge model distilled from ``teacher`` (trained here, or reused when the report trains it
        too), scored over the split's categories (it exports the most popular ``EXPORTED_CATEGORIES``:
        any other category is never its candidate, as in the browser)."""
        server = fit(teacher, split, categories, seed)
        data, samples_seconds = data_for(split, categories, seed)
        started = time.perf_counter()
        student = edge_model_distill(server, data, version="evaluation")
        seconds = time.perf_counter() - started
        own = model_case_scores(student, split)
        column = {c: i for i, c in enumerate(categories)}
        where = np.array([column[c] for c in student.categories], dtype=np.int64)
        scores = np.full((own.shape[0], len(categories)), NOT_A_CANDIDATE)
        probabilities = np.full(scores.shape, np.nan)
        scores[:, where] = own
        probabilities[:, where] = student.probabilities_matrix(own)
        return scores, {
            "train_seconds": round(seconds, 2),
            "samples_seconds": round(samples_seconds, 2),
            "training": student.training,
            "hyperparameters": student.hyperparameters,
            "probabilities": probabilities,
        }

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


def trained_scorer(model: PairModel) -> Scorer:
    """A scorer of an already-trained ``model`` (it trains nothing): its scores and probabilities mapped
    onto the split's categories by name (a category it does not know is never its candidate)."""

    def scorer(parts: Split, categories: Sequence[str], _: int) -> tuple[np.ndarray, dict[str, Any]]:
        own = model_case_scores(model, parts)
        own_probabilities = model.probabilities_matrix(own)
        position = {c: i for i, c in enumerate(model.categories)}
        scores = np.full((len(parts.cases), len(categories)), NOT_A_CANDIDATE)
        probabilities = np.full(scores.shape, np.nan)
        for column, category in enumerate(categories):
            if category in position:
                scores[:, column] = own[:, position[category]]
                probabilities[:, column] = own_probabilities[:, position[category]]
        return scores, {"probabilities": probabilities}

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

    report = interests_evaluate(
        events,
        dataset="offline",
        split=split,
        quantile=quantile,
        horizon=horizon,
        seed=seed,
        scorers={name: trained_scorer(model) for name, model in models.items()},
    )
    return {**report["results"], "test_users": report["test_users"]}
