"""The blend of the network and LightGBM: its probabilities are the mean of theirs, it ranks by that mean,
it round-trips through its directory, refuses members it cannot average, and the evaluation reports it."""

from __future__ import annotations

import numpy as np
import pytest

from inference.evaluation.models import model_scorers
from inference.evaluation.runner import interests_evaluate
from inference.models import model_load
from inference.models.blend import BlendMismatch, BlendModel
from tests.inference.models.test_models import CATEGORIES, SMALL, _train, favourite_stream, read_out


@pytest.fixture(scope="module")
def members():
    stream = favourite_stream()
    return stream, _train("neural", stream), _train("gbdt", stream)


def _by_category(ranking):
    return {category: p for (category, _), p in zip(ranking, ranking.probabilities, strict=True)}


def test_the_blend_answers_the_mean_of_its_members_probabilities_and_ranks_by_it(members):
    stream, neural, gbdt = members
    blend = BlendModel([neural, gbdt])
    for user_id in ("u1", "u2", "u7"):
        user, population = read_out(stream, user_id)
        everything = len(CATEGORIES)
        answer = blend.predict(user, population, now=user.now, top=everything)
        own = {name: _by_category(m.predict(user, population, now=user.now, top=everything))
               for name, m in (("neural", neural), ("gbdt", gbdt))}
        got = _by_category(answer)
        assert set(got) == set(own["neural"]) == set(own["gbdt"])
        for category, p in got.items():
            assert p == pytest.approx((own["neural"][category] + own["gbdt"][category]) / 2, abs=1e-6)
        # best first by the mean; the API's score is that probability too
        assert list(answer.probabilities) == sorted(answer.probabilities, reverse=True)
        assert [s for _, s in answer] == pytest.approx(list(answer.probabilities), abs=1e-6)


def test_a_saved_blend_loads_back_whole_and_answers_the_same(members, tmp_path):
    stream, neural, gbdt = members
    BlendModel([neural, gbdt]).save(tmp_path / "blend-v1")
    assert sorted(p.name for p in (tmp_path / "blend-v1").iterdir()) == ["gbdt", "manifest.json", "neural"]
    loaded = model_load(tmp_path / "blend-v1")
    assert loaded.algorithm == "blend" and [m.algorithm for m in loaded.members] == ["neural", "gbdt"]
    user, population = read_out(stream, "u5")
    before = BlendModel([neural, gbdt]).predict(user, population, now=user.now, top=4)
    after = loaded.predict(user, population, now=user.now, top=4)
    assert [c for c, _ in after] == [c for c, _ in before]
    assert list(after.probabilities) == pytest.approx(list(before.probabilities), abs=1e-6)


def test_members_of_another_vocabulary_or_without_a_calibration_are_refused(members):
    stream, neural, gbdt = members
    other = _train("gbdt", [e for e in stream if e.categories[0] != "music"])
    other.categories = other.categories[:-1]  # as if trained on a site with one category less
    with pytest.raises(BlendMismatch, match="categories"):
        BlendModel([neural, other])
    uncalibrated = _train("gbdt", stream)
    uncalibrated.calibration = None
    with pytest.raises(BlendMismatch, match="calibration"):
        BlendModel([neural, uncalibrated])
    with pytest.raises(BlendMismatch, match="two members"):
        BlendModel([neural])


def test_the_evaluation_reports_the_blend_of_the_models_it_trained():
    report = interests_evaluate(
        favourite_stream(users=80, events=40, seed=1),
        dataset="favourites",
        split="user",
        horizon=5,
        scorers=model_scorers(["neural", "gbdt", "blend"], horizon=5, device="cpu", hyperparameters=SMALL),
    )
    results = report["results"]
    assert results["blend"]["ndcg@5"] > results["popularity"]["ndcg@5"] + 0.1
    # its probabilities are measured like a model's, and it is compared with the best baseline
    assert results["blend"]["calibration"]["pairs"] > 0
    assert np.isfinite(results["blend"]["calibration"]["ece"])
    assert "blend" in report["vs_best_baseline"]
    # the same two models as their own rows: the blend's training is theirs
    assert results["blend"]["train_seconds"] == pytest.approx(
        results["blend"]["training"]["members"]["neural"]["train_seconds"]
        + results["blend"]["training"]["members"]["gbdt"]["train_seconds"],
        abs=0.02,
    )


def test_the_edge_model_can_be_distilled_from_the_blend():
    from inference.models import model_fit
    from inference.models.edge import edge_agreement, edge_model_distill
    from inference.models.training import training_samples

    stream = favourite_stream(users=120, events=40)
    data = training_samples(stream, categories=CATEGORIES, horizon=10, validation="user")
    blend = BlendModel([
        model_fit(algorithm=name, data=data, categories=CATEGORIES, hyperparameters=SMALL[name])
        for name in ("neural", "gbdt")
    ])
    student = edge_model_distill(blend, data, version="edge-blend")
    assert student.training["teacher"]["algorithm"] == "blend"
    assert edge_agreement(student, blend, data.validation)["ndcg@5_vs_teacher"] > 0.9
