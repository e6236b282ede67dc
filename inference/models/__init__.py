"""Interest models: ``neural`` (PyTorch), ``gbdt`` (LightGBM), ``blend`` (the mean of their calibrated
probabilities, ``blend.BlendModel``), ``prior`` and the baseline rankers (``popularity``, ``frequency``,
``recent``, ``decayed``) behind one interface.

``model_train`` trains one algorithm on the events it is given (carving its own later validation
slice), ``model_load`` reads any saved model back. See ``base.InterestModel`` for the interface.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.events import EventRecord
from inference.models.base import FEATURE_SCHEMA_VERSION, InterestModel, PairModel, Progress, manifest_read
from inference.models.baselines import BASELINE_RANKERS, BaselineRanker, baseline_ranker_train
from inference.models.prior import PriorModel, prior_train
from inference.models.training import TrainingData, samples_list, training_samples

if TYPE_CHECKING:
    from inference.training.cluster import TrainingEngine

__all__ = [
    "ALGORITHMS",
    "BASELINE_RANKERS",
    "BaselineRanker",
    "baseline_ranker_train",
    "FEATURE_SCHEMA_VERSION",
    "InterestModel",
    "PairModel",
    "PriorModel",
    "TrainingSet",
    "model_fit",
    "model_load",
    "model_train",
    "training_set_build",
    "training_set_facts",
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
    engine: TrainingEngine | None = None,
) -> PairModel:
    """Train ``algorithm`` on ``events`` only (its early-stopping slice is the later part of them).

    ``engine`` (``inference.training.cluster``): the dask engine builds the training set and fits the
    model on its cluster; default (or ``local``): in this process."""
    if algorithm == "prior":
        return prior_train(events=events, categories=categories)
    if algorithm in BASELINE_RANKERS:
        return baseline_ranker_train(algorithm=algorithm, events=events, categories=categories)
    params = dict(hyperparameters or {})
    if progress:
        progress(0.0, f"{algorithm}: building samples")
    training_set = training_set_build(
        events,
        categories=categories,
        horizon=horizon,
        validation=validation,
        seed=seed,
        sampling=params,
        engine=engine,
        progress=_stage(progress, 0.0, 0.3),
    )
    data = training_set.data
    model = model_fit(
        algorithm=algorithm,
        data=training_set,
        categories=categories,
        seed=seed,
        device=device,
        hyperparameters=params,
        progress=_stage(progress, 0.3, 1.0),
        engine=engine,
    )
    # the prior that answers cold visitors and fallbacks beside this version: its calibration (over its
    # reading and the history length), fitted on the same validation slice; the served prior applies it
    if data.validation:
        prior = prior_train(events=events, categories=categories).calibrate(data.validation)
        model.training["prior_calibration"] = prior.training["calibration"]
    return model


def _stage(progress: Progress | None, low: float, high: float) -> Progress | None:
    if progress is None:
        return None
    return lambda fraction, message: progress(low + (high - low) * fraction, message)


@dataclass(frozen=True)
class TrainingSet:
    """Samples built once for any learned model, with how they were built (``training_set_facts``);
    ``model_fit`` records the facts in the model's ``training["training_set"]``."""

    data: TrainingData
    facts: dict[str, Any]


def training_set_build(
    events: Sequence[EventRecord],
    *,
    categories: Sequence[str],
    horizon: int,
    validation: str = "time",
    seed: int = 0,
    sampling: Mapping[str, Any] | None = None,
    engine: TrainingEngine | None = None,
    progress: Progress | None = None,
) -> TrainingSet:
    """The training samples of ``events`` (``training.training_samples``), built by the ``engine``'s
    builder (in this process without one) and timed. ``sampling``: the hyperparameters that shape the
    samples (``popular_k``, ``item_buckets``, ``sample_every``, ``return_points``), defaults otherwise."""
    params = sampling or {}
    began = time.perf_counter()
    build = engine.samples_builder(progress=progress) if engine is not None else samples_list
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
        build=build,
    )
    return TrainingSet(data, training_set_facts(data, build, seconds=time.perf_counter() - began))


def training_set_facts(data: TrainingData, build: Any, *, seconds: float) -> dict[str, Any]:
    """How the training set was built: rows (fit + validation samples), seconds, and the distributed
    builder's own figures (partitions, population pass, per-partition cost) when it built them."""
    facts: dict[str, Any] = {"rows": len(data.fit) + len(data.validation), "seconds": round(seconds, 2)}
    own = getattr(build, "facts", None)
    if own is not None:
        facts.update(engine="dask", partitions=own.partitions, **{k: v for k, v in own.as_dict().items() if k != "rows"})
    else:
        facts["engine"] = "local"
    return facts


def model_fit(
    *,
    algorithm: str,
    data: TrainingData | TrainingSet,
    categories: Sequence[str],
    seed: int = 0,
    device: str = "auto",
    hyperparameters: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    engine: TrainingEngine | None = None,
) -> PairModel:
    """Fit ``algorithm`` on samples already built (``training_set_build``, or
    ``training.training_samples``): shareable between the learned models, so the replay runs once; on the
    ``engine``'s Dask cluster when it has one (``inference.models.distributed``: lightgbm.dask,
    torch.distributed). A ``TrainingSet``'s facts are recorded as ``training["training_set"]``."""
    if isinstance(data, TrainingSet):
        model = model_fit(
            algorithm=algorithm, data=data.data, categories=categories, seed=seed, device=device,
            hyperparameters=hyperparameters, progress=progress, engine=engine,
        )
        model.training["training_set"] = data.facts
        return model
    if engine is not None and engine.client is not None:
        from inference.models.distributed import gbdt_fit_dask, neural_fit_ddp

        assert engine.directory is not None
        if algorithm == "gbdt":
            return gbdt_fit_dask(
                data,
                categories=categories,
                client=engine.client,
                directory=engine.directory,
                seed=seed,
                hyperparameters=hyperparameters,
                progress=progress,
            )
        if algorithm == "neural":
            return neural_fit_ddp(
                data,
                categories=categories,
                client=engine.client,
                directory=engine.directory,
                seed=seed,
                device=device,
                hyperparameters=hyperparameters,
                progress=progress,
            )
        raise ValueError(f"unknown learned algorithm {algorithm!r}: use neural or gbdt")
    model = _model_fit_local(
        algorithm=algorithm,
        data=data,
        categories=categories,
        seed=seed,
        device=device,
        hyperparameters=hyperparameters,
        progress=progress,
    )
    model.training["engine"] = {
        "engine": "lightgbm" if algorithm == "gbdt" else "torch",
        "seconds": model.training.get("train_seconds"),
        **({"world_size": 1} if algorithm == "neural" else {"workers": 1}),
    }
    return model


def _model_fit_local(
    *,
    algorithm: str,
    data: TrainingData,
    categories: Sequence[str],
    seed: int,
    device: str,
    hyperparameters: Mapping[str, Any] | None,
    progress: Progress | None,
) -> PairModel:
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
    if algorithm == "blend":
        from inference.models.blend import BlendModel

        return BlendModel.load(directory)
    raise ValueError(f"{directory}: unknown algorithm {algorithm!r}")
