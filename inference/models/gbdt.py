"""LightGBM over the (user, candidate category) pair features.

Each row is one pair: the tabular features of ``inputs.pair_rows`` plus the candidate's category id
(a LightGBM categorical feature). Two objectives are measured on the later validation slice:
``lambdarank`` (a query is one prediction sample, labels are the graded next-H counts) and
``binary`` (one-vs-rest: does the category occur in the next H events). ``objective="auto"``
trains both and keeps the one with the higher validation NDCG@5 (both figures go in ``training``).
The default is ``lambdarank``: it won on every dataset's validation slice (MovieLens, Taobao, the demo
traffic: docs/quality.md), so training the other one only doubled the time. Early stopping is on the
validation slice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import lightgbm as lgb
import numpy as np

from inference.models.base import PairModel, Progress, manifest_read
from inference.models.inputs import PAIR_FEATURE_NAMES, Sample
from inference.models.training import TrainingData, ndcg_of_samples

__all__ = ["GbdtModel", "gbdt_fit", "DEFAULT_HYPERPARAMETERS"]

BOOSTER_FILE = "booster.txt"
MAX_LABEL = 30  # lambdarank's default label_gain covers 0..30
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "objective": "lambdarank",  # "auto": both objectives, the better on validation kept (twice the time)
    # small trees, slow learning: on the retail clickstream (thousands of sparse categories) 31 leaves at
    # 0.05 stopped after a dozen rounds and its test NDCG moved by +-0.01 with the seed of the split's
    # validation slice; 7 leaves at 0.02 learned for ~200 rounds (docs/quality.md)
    "num_leaves": 7,
    "learning_rate": 0.02,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_rounds": 800,
    # patient early stopping: at 0.02 the validation NDCG wanders for a long while; with a patience of
    # 60 one bagging seed on the retail sample stopped at round 10 (0.463 on a later held-out slice,
    # 0.481-0.483 for the others), with 200 it ran to round 332 (0.482); docs/quality.md
    "early_stopping_rounds": 200,
    "num_threads": 1,
    "popular_k": 20,
    "item_buckets": 8192,
    # the candidate's category id as a categorical feature: "auto" = only with at most
    # CATEGORY_FEATURE_MAX categories (MovieLens genres, the demo's taxonomy); with a retailer's
    # thousands of sparse leaf categories each id has a handful of rows and the splits on it overfit
    "category_feature": "auto",
    "linear_gain": True,
}
CATEGORY_FEATURE_MAX = 200


def _matrix(samples: Sequence[Sample]) -> np.ndarray:
    if not samples:
        return np.zeros((0, len(PAIR_FEATURE_NAMES) + 1), dtype=np.float32)
    rows = np.concatenate([s.rows for s in samples])
    ids = np.concatenate([s.candidates for s in samples]).astype(np.float32)[:, None]
    return np.hstack([rows, ids])


class GbdtModel(PairModel):
    algorithm = "gbdt"
    uses_sequence = False  # scores the pair rows only

    def __init__(self, *, booster: lgb.Booster, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.booster = booster

    @property
    def calibration_input(self) -> str:
        # lambdarank ranks within a query (a user's candidates): its score level per user means nothing
        return "raw" if self.hyperparameters.get("objective") == "binary" else "log_softmax"

    def score(self, sample: Sample) -> np.ndarray:
        if sample.candidates.size == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(_matrix([sample]), num_threads=1), dtype=np.float64)

    def score_many(self, samples: Sequence[Sample]) -> list[np.ndarray]:
        if not samples:
            return []
        flat = np.asarray(self.booster.predict(_matrix(samples)), dtype=np.float64)
        bounds = np.cumsum([0] + [s.candidates.size for s in samples])
        return [flat[bounds[i] : bounds[i + 1]] for i in range(len(samples))]

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / BOOSTER_FILE))
        self._write_manifest(directory, {"artifacts": [BOOSTER_FILE]})

    @classmethod
    def load(cls, directory: Path) -> Self:
        manifest = manifest_read(directory)
        path = Path(directory) / BOOSTER_FILE
        if not path.is_file():
            raise FileNotFoundError(path)
        booster = lgb.Booster(model_file=str(path))
        if booster.num_feature() != len(PAIR_FEATURE_NAMES) + 1:
            raise ValueError(
                f"{path}: {booster.num_feature()} features, expected {len(PAIR_FEATURE_NAMES) + 1}"
            )
        return cls(booster=booster, **cls._kwargs_from_manifest(manifest))


def _labels(samples: Sequence[Sample], objective: str) -> np.ndarray:
    """The candidates' labels as the objective reads them (graded counts or occurred / not)."""
    labels = np.concatenate([s.labels for s in samples]) if samples else np.zeros(0)
    return np.minimum(labels, MAX_LABEL) if objective == "lambdarank" else (labels > 0).astype(np.float32)


def _features(samples: Sequence[Sample], *, category_feature: bool) -> np.ndarray:
    matrix = _matrix(samples)
    if not category_feature:
        # a constant column: no tree splits on it, so the served rows may carry any id there
        matrix[:, -1] = 0.0
    return matrix


def _dataset(
    samples: Sequence[Sample],
    objective: str,
    reference: lgb.Dataset | None = None,
    *,
    category_feature: bool = True,
) -> lgb.Dataset:
    return lgb.Dataset(
        _features(samples, category_feature=category_feature),
        label=_labels(samples, objective),
        group=[s.candidates.size for s in samples] if objective == "lambdarank" else None,
        feature_name=[*PAIR_FEATURE_NAMES, "category_id"],
        categorical_feature=["category_id"],
        reference=reference,
        free_raw_data=False,
    )


def _category_feature(params: Mapping[str, Any], n_categories: int) -> bool:
    setting = params.get("category_feature", "auto")
    if setting == "auto":
        return n_categories <= CATEGORY_FEATURE_MAX
    return bool(setting)


def _lgb_params(objective: str, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    lgb_params = {
        "objective": objective,
        "metric": "ndcg" if objective == "lambdarank" else "binary_logloss",
        "num_leaves": params["num_leaves"],
        "learning_rate": params["learning_rate"],
        "min_data_in_leaf": params["min_data_in_leaf"],
        "feature_fraction": params["feature_fraction"],
        "bagging_fraction": params["bagging_fraction"],
        "bagging_freq": params["bagging_freq"],
        "lambda_l2": params["lambda_l2"],
        "num_threads": params["num_threads"],
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    if objective == "lambdarank":
        lgb_params["eval_at"] = [5]
        if params.get("linear_gain", True):
            # the protocol's NDCG gains are the counts themselves (relevance 4 = 4 times as good as 1);
            # LightGBM's default 2^label - 1 made a category seen 10 times worth 1,023 seen-once ones
            lgb_params["label_gain"] = [float(g) for g in range(MAX_LABEL + 1)]
    return lgb_params


def _train_one(
    data: TrainingData, objective: str, params: Mapping[str, Any], seed: int, *, category_feature: bool
) -> lgb.Booster:
    lgb_params = _lgb_params(objective, params, seed)
    train_set = _dataset(data.fit, objective, category_feature=category_feature)
    callbacks: list[Any] = []
    valid_sets = []
    if data.validation:
        valid_sets = [
            _dataset(data.validation, objective, reference=train_set, category_feature=category_feature)
        ]
        callbacks.append(lgb.early_stopping(params["early_stopping_rounds"], verbose=False))
    return lgb.train(
        lgb_params,
        train_set,
        num_boost_round=params["max_rounds"],
        valid_sets=valid_sets,
        callbacks=callbacks,
    )


def _boosters_choose(
    data: TrainingData,
    objectives: Sequence[str],
    train: Callable[[str], lgb.Booster],
    *,
    categories: Sequence[str],
    params: dict[str, Any],
    category_feature: bool,
    progress: Progress | None,
    started: float,
) -> GbdtModel:
    """Train each objective (``train``), keep the one with the higher validation NDCG@5."""
    candidates: list[tuple[float, str, lgb.Booster]] = []
    for i, objective in enumerate(objectives):
        if progress:
            progress(i / len(objectives), f"gbdt: fitting {objective}")
        booster = train(objective)
        model = GbdtModel(
            booster=booster, categories=categories, popularity=data.popularity, hyperparameters=params
        )
        ndcg = ndcg_of_samples(data.validation, model.score_many(data.validation)) if data.validation else 0.0
        candidates.append((ndcg, objective, booster))
    best_ndcg, best_objective, best_booster = max(candidates, key=lambda c: c[0])
    if progress:
        progress(1.0, f"gbdt: kept {best_objective}")
    training = {
        "train_seconds": round(time.perf_counter() - started, 2),
        "objective": best_objective,
        "category_feature": category_feature,
        "best_iteration": best_booster.best_iteration or best_booster.current_iteration(),
        "validation_ndcg@5": round(best_ndcg, 4),
        "validation_ndcg@5_by_objective": {obj: round(n, 4) for n, obj, _ in candidates},
        "fit_samples": len(data.fit),
        "validation_samples": len(data.validation),
    }
    return GbdtModel(
        booster=best_booster,
        categories=categories,
        popularity=data.popularity,
        hyperparameters={**params, "objective": best_objective},
        training=training,
    ).calibrate(data.validation)


def gbdt_fit(
    data: TrainingData,
    *,
    categories: Sequence[str],
    seed: int = 0,
    hyperparameters: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> GbdtModel:
    """Fit LightGBM on ``data.fit``, early-stopped and chosen on ``data.validation``."""
    params = {**DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    params.update(popular_k=data.popular_k, item_buckets=data.item_buckets)  # as the samples were built
    objectives = ["lambdarank", "binary"] if params["objective"] == "auto" else [params["objective"]]
    started = time.perf_counter()
    category_feature = _category_feature(params, len(categories))
    return _boosters_choose(
        data,
        objectives,
        lambda objective: _train_one(data, objective, params, seed, category_feature=category_feature),
        categories=categories,
        params=params,
        category_feature=category_feature,
        progress=progress,
        started=started,
    )
