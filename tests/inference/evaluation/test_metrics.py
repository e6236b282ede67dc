"""Metrics on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.evaluation.metrics import (
    binary_auc,
    bootstrap_interval,
    mean_auc,
    ndcg_at_k,
    paired_bootstrap_interval,
    ranking_order,
    recall_at_k,
)


def test_ndcg_uses_linear_graded_gains_against_the_ideal_order():
    truth = np.array([[4.0, 0.0, 1.0]])
    order = np.array([[2, 0, 1]])  # relevance 1 first, then 4
    dcg = 1.0 / math.log2(2) + 4.0 / math.log2(3)
    ideal = 4.0 / math.log2(2) + 1.0 / math.log2(3)
    assert ndcg_at_k(order, truth, k=5)[0] == pytest.approx(dcg / ideal)
    assert ndcg_at_k(np.array([[0, 2, 1]]), truth, k=5)[0] == pytest.approx(1.0)


def test_ndcg_is_undefined_without_relevant_categories():
    assert np.isnan(ndcg_at_k(np.array([[0, 1]]), np.zeros((1, 2)), k=5)[0])


def test_recall_counts_at_most_k_true_categories():
    truth = np.array([[5.0, 3.0, 2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    order = np.array([[3, 2, 4, 0, 1], [0, 1, 2, 3, 4]])
    recall = recall_at_k(order, truth, k=3)
    assert recall[0] == pytest.approx(2 / 3)  # 4 true categories: the best possible is 3 of 3
    assert recall[1] == 0.0


def test_ranking_order_breaks_ties_by_the_tiebreak_rank():
    order = ranking_order(np.array([[1.0, 2.0, 1.0, 0.0]]), tiebreak=np.array([3, 0, 1, 2]))
    assert order.tolist() == [[1, 2, 0, 3]]


def test_auc_ranks_positives_above_negatives_with_ties_half():
    assert binary_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.1, 0.2])) == 1.0
    assert binary_auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    assert binary_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.1, 0.2])) == pytest.approx(0.5)
    assert np.isnan(binary_auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_mean_auc_skips_categories_with_one_class():
    truth = np.array([[1.0, 1.0], [0.0, 1.0]])
    scores = np.array([[0.9, 0.0], [0.1, 1.0]])
    assert mean_auc(scores, truth) == 1.0


def test_bootstrap_interval_brackets_the_mean_and_a_clear_difference_excludes_zero():
    rng = np.random.default_rng(1)
    values = rng.uniform(0.5, 1.0, size=400)
    lo, hi = bootstrap_interval(values, seed=0)
    assert lo < values.mean() < hi
    lo, hi = paired_bootstrap_interval(values, values - 0.05 + rng.normal(0, 0.01, 400), seed=0)
    assert lo > 0
    lo, hi = paired_bootstrap_interval(values, values + rng.normal(0, 0.05, 400), seed=0)
    assert lo < 0 < hi
