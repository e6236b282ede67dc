"""Per-category figures of a ranker (kept with each model version for the dashboard's comparison)."""

from __future__ import annotations

import numpy as np

from inference.evaluation.runner import per_category_metrics, ranker_result, ranking_order


def test_hit_rate_and_auc_per_category_count_only_the_users_who_engaged():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.1], [0.3, 0.2, 0.9]])
    truth = np.array([[2, 0, 1], [0, 1, 0], [1, 0, 0]])
    order = ranking_order(scores, np.arange(3))
    figures = per_category_metrics(scores, truth, order, ["a", "b", "c"], k=1)
    assert list(figures) == ["a", "b", "c"]  # most engaged users first
    assert figures["a"] == {"users": 2, "hit@1": 0.5, "auc": 1.0}  # user 2's top 1 is c
    assert figures["c"] == {"users": 1, "hit@1": 0.0, "auc": 0.5}


def test_only_the_most_engaged_categories_are_kept_and_unengaged_ones_never():
    truth = np.array([[1, 0, 3, 0], [1, 0, 1, 0]])
    scores = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    order = ranking_order(scores, np.arange(4))
    assert list(per_category_metrics(scores, truth, order, list("wxyz"), limit=1)) == ["w"]
    assert set(per_category_metrics(scores, truth, order, list("wxyz"))) == {"w", "y"}
    # every user engaged with w: its AUC is undefined
    assert per_category_metrics(scores, truth, order, list("wxyz"))["w"]["auc"] is None


def test_the_summary_carries_per_category_figures_only_when_asked():
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    truth = np.array([[1, 0], [0, 1]])
    plain = ranker_result(scores, truth, np.arange(2), {}).summary(seed=0)
    assert "per_category" not in plain
    rich = ranker_result(scores, truth, np.arange(2), {}, categories=["a", "b"]).summary(seed=0)
    assert rich["per_category"]["a"] == {"users": 1, "hit@3": 1.0, "auc": 1.0}
