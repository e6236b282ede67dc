"""Ranking metrics over a score matrix: rows are test users, columns are categories.

Every ranker hands over ``scores[user, category]`` (higher first); ties are broken by a fixed
category order (population popularity, most popular first), so that rankings are deterministic.
``truth[user, category]`` holds the counted categories of the user's next H events.

- NDCG@k with linear graded gains: DCG = sum(rel_i / log2(i + 1)) over the top k, divided by the
  DCG of the truth sorted by count.
- Recall@k: the share of the user's true categories found in the top k, out of at most k
  (``|top_k ∩ truth| / min(k, |truth|)``), so a perfect ranking scores 1 even with many true categories.
- AUC: per category, users who engage with it (count > 0) against those who do not, ranked by the
  category's score (Mann-Whitney with average ranks for ties); averaged over the categories where
  both classes occur.
- Bootstrap: percentile intervals of the mean over users resampled with replacement; the paired
  version resamples the same users for two rankers and bounds the mean difference.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ranking_order",
    "ndcg_at_k",
    "recall_at_k",
    "mean_auc",
    "bootstrap_interval",
    "paired_bootstrap_interval",
]


def ranking_order(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Column indices per row, best first; equal scores go by ascending ``tiebreak``."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.empty(scores.shape, dtype=np.int64)
    for row in range(scores.shape[0]):
        order[row] = np.lexsort((tiebreak, -scores[row]))
    return order


def ndcg_at_k(order: np.ndarray, truth: np.ndarray, k: int = 5) -> np.ndarray:
    """Per-user NDCG@k (linear gains); users with no relevant category get NaN."""
    truth = np.asarray(truth, dtype=np.float64)
    k = min(k, truth.shape[1])
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gains = np.take_along_axis(truth, order[:, :k], axis=1)
    dcg = gains @ discounts
    ideal = -np.sort(-truth, axis=1)[:, :k] @ discounts
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ideal > 0, dcg / ideal, np.nan)


def recall_at_k(order: np.ndarray, truth: np.ndarray, k: int = 3) -> np.ndarray:
    """Per-user share of the true categories (at most k of them) found in the top k."""
    relevant = np.asarray(truth) > 0
    hits = np.take_along_axis(relevant, order[:, :k], axis=1).sum(axis=1)
    possible = np.minimum(relevant.sum(axis=1), k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(possible > 0, hits / possible, np.nan)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average = ends - (counts - 1) / 2.0
    return average[inverse]


def binary_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for binary ``labels`` (NaN if one class is absent)."""
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def mean_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Per-category AUC averaged over categories with both classes present."""
    values = [binary_auc(truth[:, c] > 0, scores[:, c]) for c in range(truth.shape[1])]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def bootstrap_interval(
    values: np.ndarray, *, samples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(samples, values.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha)))


def paired_bootstrap_interval(
    a: np.ndarray, b: np.ndarray, *, samples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Interval of mean(a - b) resampling the same users for both (rows where either is NaN dropped)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    return bootstrap_interval(a[keep] - b[keep], samples=samples, seed=seed, level=level)
