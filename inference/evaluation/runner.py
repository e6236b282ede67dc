"""One evaluation run: split, baselines, freshly trained models, metrics, the JSON report.

Models come in as *scorers*: callables that receive the :class:`Split` (they may train on
``split.train`` only) and the category list, and return ``scores[case, category]`` plus a dict of
extra facts (training time, hyperparameters) for the report. A scorer whose model gives calibrated
probabilities puts them in the extra dict as ``probabilities`` (an array like the scores, NaN where
the model scored no pair); the runner measures their reliability against the test users' next H
events (``calibration`` in the report: expected calibration error, the reliability diagram's bins)
and leaves the array out of the report. Nothing here touches the model
registry or the active models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.evaluation.baselines import BASELINES, baseline_scores, category_popularity
from inference.evaluation.metrics import (
    binary_auc,
    bootstrap_interval,
    mean_auc,
    ndcg_at_k,
    paired_bootstrap_interval,
    ranking_order,
    recall_at_k,
)
from inference.evaluation.protocol import Split, split_events
from inference.events import EventRecord
from inference.models.calibration import expected_calibration_error, reliability

__all__ = [
    "Scorer",
    "RankerResult",
    "split_categories",
    "split_results",
    "split_truth",
    "ranker_result",
    "per_category_metrics",
    "calibration_report",
    "interests_evaluate",
]

# per-category figures are kept for this many categories (those most test users engaged with), so a
# retailer's thousands of leaf categories do not bloat the report stored with every model version
PER_CATEGORY_LIMIT = 30

Scorer = Callable[[Split, Sequence[str], int], tuple[np.ndarray, dict[str, Any]]]


@dataclass(frozen=True)
class RankerResult:
    ndcg: np.ndarray  # per case
    recall: np.ndarray  # per case
    auc: float
    extra: dict[str, Any]
    per_category: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None

    def summary(self, *, seed: int) -> dict[str, Any]:
        lo, hi = bootstrap_interval(self.ndcg, seed=seed)
        out = {
            "ndcg@5": round(float(np.nanmean(self.ndcg)), 4),
            "ndcg@5_ci": [round(lo, 4), round(hi, 4)],
            "recall@3": round(float(np.nanmean(self.recall)), 4),
            "auc": round(self.auc, 4),
            **self.extra,
        }
        if self.per_category:
            out["per_category"] = self.per_category
        if self.calibration is not None:
            out["calibration"] = self.calibration
        return out


def calibration_report(probabilities: np.ndarray, scores: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """How reliable a model's probabilities are on the test users' (user, candidate) pairs: ``ece``,
    ``ece_uncalibrated`` (the same pairs read as a logistic of the raw score, what the API's ``score``
    is), the ``pairs`` measured, their observed ``positive_rate`` and the ``reliability`` bins."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    scored = np.isfinite(probabilities)
    labels = np.asarray(truth)[scored] > 0
    p = probabilities[scored]
    logistic = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(scores, dtype=np.float64)[scored], -30.0, 30.0)))
    return {
        "ece": round(expected_calibration_error(p, labels), 4) if p.size else None,
        "ece_uncalibrated": round(expected_calibration_error(logistic, labels), 4) if p.size else None,
        "pairs": int(p.size),
        "positive_rate": round(float(labels.mean()), 4) if p.size else None,
        "reliability": reliability(p, labels),
    }


def split_categories(events: Sequence[EventRecord], split: Split) -> tuple[list[str], np.ndarray]:
    """All categories (training-side popularity order first) and the tiebreak rank of each."""
    popularity = category_popularity(split.train)
    every = {c for e in events for c in e.categories}
    categories = sorted(every, key=lambda c: (-popularity.get(c, 0), c))
    return categories, np.arange(len(categories))


def per_category_metrics(
    scores: np.ndarray,
    truth: np.ndarray,
    order: np.ndarray,
    categories: Sequence[str],
    *,
    k: int = 3,
    limit: int = PER_CATEGORY_LIMIT,
) -> dict[str, dict[str, Any]]:
    """For the ``limit`` categories most test users engaged with: ``users`` (how many engaged),
    ``hit@3`` (the share of them whose top k held the category) and ``auc`` (the category's score
    ranking its engaged users above the others; None when every user engaged)."""
    relevant = np.asarray(truth) > 0
    if relevant.size == 0:
        return {}
    users = relevant.sum(axis=0)
    in_top = np.zeros(relevant.shape, dtype=bool)
    np.put_along_axis(in_top, order[:, :k], True, axis=1)
    out: dict[str, dict[str, Any]] = {}
    for column in np.argsort(-users, kind="stable")[:limit]:
        engaged = int(users[column])
        if engaged == 0:
            break
        auc = binary_auc(relevant[:, column], scores[:, column])
        out[str(categories[column])] = {
            "users": engaged,
            f"hit@{k}": round(float((in_top[:, column] & relevant[:, column]).sum()) / engaged, 4),
            "auc": None if np.isnan(auc) else round(auc, 4),
        }
    return out


def ranker_result(
    scores: np.ndarray,
    truth: np.ndarray,
    tiebreak: np.ndarray,
    extra: dict[str, Any],
    *,
    categories: Sequence[str] | None = None,
) -> RankerResult:
    """Metrics of one ranker; with ``categories``, also its per-category figures."""
    order = ranking_order(scores, tiebreak)
    extra = dict(extra)
    probabilities = extra.pop("probabilities", None)
    return RankerResult(
        ndcg_at_k(order, truth, 5),
        recall_at_k(order, truth, 3),
        mean_auc(scores, truth),
        extra,
        per_category_metrics(scores, truth, order, categories) if categories is not None else {},
        calibration_report(probabilities, scores, truth) if probabilities is not None else None,
    )


def split_truth(split: Split, categories: Sequence[str]) -> np.ndarray:
    """``truth[case, category]``: how often each test user's next H events held the category."""
    index = {c: i for i, c in enumerate(categories)}
    truth = np.zeros((len(split.cases), len(categories)))
    for row, case in enumerate(split.cases):
        for category, count in case.truth.items():
            truth[row, index[category]] = count
    return truth


def split_results(
    split: Split,
    categories: Sequence[str],
    tiebreak: np.ndarray,
    scorers: Mapping[str, Scorer],
    *,
    seed: int,
    baselines: Sequence[str] = BASELINES,
) -> dict[str, RankerResult]:
    """Each scorer's and each of ``baselines``' metrics on the split's test users, per case (the
    scorers' with per-category figures: the dashboard charts two versions side by side)."""
    truth = split_truth(split, categories)
    results: dict[str, RankerResult] = {}
    for name, scorer in scorers.items():
        scores, extra = scorer(split, categories, seed)
        results[name] = ranker_result(scores, truth, tiebreak, extra, categories=categories)
    popularity = category_popularity(split.train)
    for name in baselines:
        results[name] = ranker_result(baseline_scores(name, split.cases, categories, popularity), truth, tiebreak, {})
    return results


def interests_evaluate(
    events: Sequence[EventRecord],
    *,
    dataset: str,
    split: str = "time",
    quantile: float = 0.8,
    horizon: int = 10,
    seed: int = 0,
    scorers: Mapping[str, Scorer] | None = None,
    log: Callable[[str], None] = lambda message: None,
    on_split: Callable[[Split], None] | None = None,
) -> dict[str, Any]:
    """Run the protocol and return the JSON-ready report (``results`` keyed by ranker name).

    ``on_split`` sees the split before any model trains (the command refuses a split without test users).
    """
    parts = split_events(events, kind=split, quantile=quantile, horizon=horizon)
    if on_split is not None:
        on_split(parts)
    categories, tiebreak = split_categories(events, parts)
    log(
        f"{dataset}: {len(parts.train)} training events, {len(parts.cases)} test users, {len(categories)} categories"
    )
    results = split_results(parts, categories, tiebreak, scorers or {}, seed=seed)

    report: dict[str, Any] = {
        "dataset": dataset,
        "split": split,
        "test_users": len(parts.cases),
        "results": {name: result.summary(seed=seed) for name, result in results.items()},
        "horizon": horizon,
        "quantile": quantile,
        "seed": seed,
        "training_events": len(parts.train),
        "categories": len(categories),
    }
    if parts.cutoff is not None:
        report["cutoff_ts"] = parts.cutoff
    models = [name for name in results if name not in BASELINES]
    if models and parts.cases:
        best_model = max(models, key=lambda n: float(np.nanmean(results[n].ndcg)))
        best_baseline = max(BASELINES, key=lambda n: float(np.nanmean(results[n].ndcg)))
        diff = float(np.nanmean(results[best_model].ndcg - results[best_baseline].ndcg))
        lo, hi = paired_bootstrap_interval(results[best_model].ndcg, results[best_baseline].ndcg, seed=seed)
        report["vs_best_baseline"] = {}
        for name in models:
            lo_m, hi_m = paired_bootstrap_interval(results[name].ndcg, results[best_baseline].ndcg, seed=seed)
            report["vs_best_baseline"][name] = {
                "baseline": best_baseline,
                "ndcg@5_diff": round(float(np.nanmean(results[name].ndcg - results[best_baseline].ndcg)), 4),
                "ndcg@5_diff_ci": [round(lo_m, 4), round(hi_m, 4)],
            }
        report["best_vs_baseline"] = {
            "model": best_model,
            "baseline": best_baseline,
            "ndcg@5_diff": round(diff, 4),
            "ndcg@5_diff_ci": [round(lo, 4), round(hi, 4)],
            "excludes_zero": bool(lo > 0 or hi < 0),
        }
    return report
