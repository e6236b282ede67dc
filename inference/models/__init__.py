"""Interest models: ``neural`` (PyTorch), ``gbdt`` (LightGBM), ``prior`` and the baseline rankers
(``popularity``, ``frequency``, ``recent``, ``decayed``) behind one interface.

``model_train`` trains one algorithm on the events it is given (carving its own later validation
slice), ``model_load`` reads any saved model back. See ``base.InterestModel`` for the interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from inference.events import EventRecord
from inference.models.base import FEATURE_SCHEMA_VERSION, InterestModel, PairModel, Progress, manifest_read
from inference.models.baselines import BASELINE_RANKERS, BaselineRanker, baseline_ranker_train
from inference.models.prior import PriorModel, prior_train
from inference.models.training import TrainingData, training_samples

__all__ = [
    "ALGORITHMS",
    "BASELINE_RANKERS",
    "BaselineRanker",
    "baseline_ranker_train",
    "FEATURE_SCHEMA_VERSION",
    "InterestModel",
    "PairModel",
    "PriorModel",
    "model_fit",
    "model_load",
    "model_train",
]

ALGORITHMS = ("neural", "gbdt", "prior")


def model_train(
    *,
    algorithm: str,
    events: Sequence[EventRecord],
    categories: Sequence[str],
    horizon: int = 10,
    seed: int = 0,
    device: str = "auto",
    validation: str = "time",
    hyperparameters: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> PairModel:
    """Train ``algorithm`` on ``events`` only (its early-stopping slice is the later part of them)."""
    if algorithm == "prior":
        return prior_train(events=events, categories=categories)
    if algorithm in BASELINE_RANKERS:
        return baseline_ranker_train(algorithm=algorithm, events=events, categories=categories)
    params = dict(hyperparameters or {})
    if progress:
        progress(0.0, f"{algorithm}: building samples")
    data = training_samples(
        events,
        categories=categories,
        horizon=horizon,
        validation=validation,
        seed=seed,
        popular_k=int(params.get("popular_k", 20)),
        item_buckets=int(params.get("item_buckets", 8192)),
        every=int(params.get("sample_every", 5)),
        returns=bool(params.get("return_points", True)),
    )
    return model_fit(
        algorithm=algorithm,
        data=data,
        categories=categories,
        seed=seed,
        device=device,
        hyperparameters=params,
        progress=progress,
    )


def model_fit(
    *,
    algorithm: str,
    data: TrainingData,
    categories: Sequence[str],
    seed: int = 0,
    device: str = "auto",
    hyperparameters: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> PairModel:
    """Fit ``algorithm`` on samples already built by ``training.training_samples`` (shareable between
    the learned models, so the replay runs once)."""
    if algorithm == "gbdt":
        from inference.models.gbdt import gbdt_fit

        return gbdt_fit(
            data, categories=categories, seed=seed, hyperparameters=hyperparameters, progress=progress
        )
    if algorithm == "neural":
        from inference.models.neural import neural_fit

        return neural_fit(
            data,
            categories=categories,
            seed=seed,
            device=device,
            hyperparameters=hyperparameters,
            progress=progress,
        )
    raise ValueError(f"unknown learned algorithm {algorithm!r}: use neural or gbdt")


def model_load(directory: Path) -> PairModel:
    """Load the model saved in ``directory`` (raises on a missing or corrupt artifact)."""
    algorithm = manifest_read(directory).get("algorithm")
    if algorithm == "prior":
        return PriorModel.load(directory)
    if algorithm == "edge":
        from inference.models.edge import EdgeModel

        return EdgeModel.load(directory)
    if algorithm in BASELINE_RANKERS:
        return BASELINE_RANKERS[algorithm].load(directory)
    if algorithm == "gbdt":
        from inference.models.gbdt import GbdtModel

        return GbdtModel.load(directory)
    if algorithm == "neural":
        from inference.models.neural import NeuralModel

        return NeuralModel.load(directory)
    raise ValueError(f"{directory}: unknown algorithm {algorithm!r}")
