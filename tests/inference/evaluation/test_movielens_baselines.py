"""The baselines computed on MovieLens agree with the figures in EVALUATION.md (within 0.005)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from inference.evaluation.reading import events_read
from inference.evaluation.runner import interests_evaluate

pytestmark = pytest.mark.slow

USER_SPLIT = {
    "popularity": (0.774, 0.916),
    "frequency": (0.808, 0.939),
    "recent": (0.801, 0.941),
    "decayed": (0.793, 0.928),
}
TIME_SPLIT = {"popularity": 0.808, "frequency": 0.790, "recent": 0.765, "decayed": 0.742}


@functools.cache
def _read(directory: Path):
    return events_read(directory, format="movielens")


@pytest.fixture
def movielens(shared_data: Path):
    return _read(shared_data / "movielens-latest-small")


def test_user_split_baselines_match_the_reference_table(movielens):
    report = interests_evaluate(movielens, dataset="movielens-latest-small", split="user", horizon=10)
    assert report["test_users"] == 501
    for name, (ndcg, recall) in USER_SPLIT.items():
        assert report["results"][name]["ndcg@5"] == pytest.approx(ndcg, abs=0.005)
        assert report["results"][name]["recall@3"] == pytest.approx(recall, abs=0.005)
    lo, hi = report["results"]["frequency"]["ndcg@5_ci"]
    assert lo == pytest.approx(0.796, abs=0.005) and hi == pytest.approx(0.821, abs=0.005)


def test_time_split_baselines_match_the_reference_table(movielens):
    report = interests_evaluate(movielens, dataset="movielens-latest-small", split="time", horizon=10)
    assert report["test_users"] == 28
    for name, ndcg in TIME_SPLIT.items():
        assert report["results"][name]["ndcg@5"] == pytest.approx(ndcg, abs=0.005)
