"""The servable baseline rankers rank as the evaluation's baselines of the same name do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.evaluation.models import model_case_scores
from inference.evaluation.protocol import split_events
from inference.evaluation.runner import interests_evaluate
from inference.models import BASELINE_RANKERS, baseline_ranker_train, model_load
from tests.inference.streams import affinity_stream

CATEGORIES = [f"c{i}" for i in range(8)]


@pytest.mark.parametrize("name", sorted(BASELINE_RANKERS))
def test_a_baseline_ranker_scores_what_the_evaluation_baseline_of_its_name_scores(name):
    """Time split: one prediction time, the population of the whole training side, the same ranking.
    (Under the user split each user is predicted at their own cut, and the ranker breaks ties by the
    popularity at that time, where the evaluation uses the whole training side's.)"""
    events = affinity_stream(CATEGORIES, seed=3, events=2500, users=40, step_s=1800.0)

    def scorer(split, categories, seed):
        ranker = baseline_ranker_train(algorithm=name, events=split.train, categories=categories)
        return model_case_scores(ranker, split), {}

    report = interests_evaluate(events, dataset="t", split="time", scorers={"ranker": scorer})
    assert report["test_users"] > 10
    served, measured = report["results"]["ranker"], report["results"][name]
    assert served["ndcg@5"] == pytest.approx(measured["ndcg@5"], abs=1e-9)
    assert served["recall@3"] == pytest.approx(measured["recall@3"], abs=1e-9)


def test_a_saved_baseline_ranker_loads_back_and_answers_the_same(tmp_path: Path):
    events = affinity_stream(CATEGORIES, seed=4)
    split = split_events(events, kind="time")
    ranker = baseline_ranker_train(algorithm="decayed", events=split.train, categories=CATEGORIES)
    ranker.save(tmp_path / "decayed")
    loaded = model_load(tmp_path / "decayed")
    assert loaded.algorithm == "decayed"
    assert np.array_equal(model_case_scores(loaded, split), model_case_scores(ranker, split))
