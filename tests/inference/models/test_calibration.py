"""Calibrated probabilities: the Platt fit, the reliability measures, and the models' calibration on
held-out users (``evaluate_interests``' ``calibration`` report)."""

from __future__ import annotations

import numpy as np
import pytest

from inference.evaluation.models import model_scorers
from inference.evaluation.runner import interests_evaluate
from inference.models import model_load, model_train
from inference.models.calibration import Calibration, calibration_fit, expected_calibration_error, reliability
from tests.inference.models.test_models import CATEGORIES, SMALL, favourite_stream


def test_platt_fit_recovers_the_line_that_generated_the_labels():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=20_000)
    labels = (rng.random(raw.size) < 1.0 / (1.0 + np.exp(-(2.0 * raw - 1.0)))).astype(float)
    calibration, facts = calibration_fit([raw[:10_000], raw[10_000:]], [labels[:10_000], labels[10_000:]])
    assert calibration.a == pytest.approx(2.0, abs=0.1)
    assert calibration.b == pytest.approx(-1.0, abs=0.1)
    assert facts["validation_pairs"] == 20_000
    assert facts["validation_ece"] < 0.02 < facts["validation_ece_before"]


def test_a_constant_overconfident_score_has_the_gap_as_its_calibration_error():
    labels = np.array([1, 0] * 50)
    assert expected_calibration_error(np.full(100, 0.9), labels) == pytest.approx(0.4)
    assert reliability(np.full(100, 0.9), labels) == [
        {"bin": [0.9, 1.0], "pairs": 100, "predicted": 0.9, "observed": 0.5}
    ]


def test_log_softmax_input_ignores_a_shift_of_one_users_scores():
    calibration = Calibration("platt", a=1.3, b=0.4, input="log_softmax")
    scores = np.array([2.0, 0.5, -1.0])
    assert np.allclose(calibration.probabilities(scores), calibration.probabilities(scores + 17.0))


def test_learned_models_probabilities_match_held_out_rates_better_than_their_scores():
    """On test users the models never saw, the calibrated probabilities sit closer to the observed
    rates than the logistic scores the API served before (and the report has the diagram's bins)."""
    report = interests_evaluate(
        favourite_stream(users=120, events=40),
        dataset="favourites",
        split="user",
        scorers=model_scorers(["gbdt", "neural", "prior"], hyperparameters=SMALL),
    )
    for name in ("gbdt", "neural", "prior"):
        calibration = report["results"][name]["calibration"]
        assert calibration["pairs"] > 0
        assert calibration["ece"] < calibration["ece_uncalibrated"], name
        assert calibration["ece"] < 0.2, name
        assert sum(b["pairs"] for b in calibration["reliability"]) == calibration["pairs"]
    for name in ("gbdt", "neural"):
        facts = report["results"][name]["training"]["calibration"]
        assert facts["method"] == "platt" and facts["validation_pairs"] > 0
    assert "calibration" not in report["results"]["frequency"]  # a baseline ranker has no probabilities


@pytest.mark.parametrize("algorithm", ["gbdt", "neural"])
def test_the_calibration_is_saved_with_the_model_version(algorithm, tmp_path):
    stream = favourite_stream()
    model = model_train(
        algorithm=algorithm, events=stream, categories=CATEGORIES, hyperparameters=SMALL[algorithm]
    )
    model.save(tmp_path)
    loaded = model_load(tmp_path)
    assert loaded.calibration == model.calibration and loaded.calibration is not None
    user = favourite_stream(users=2, events=10, seed=5)
    from tests.inference.models.test_models import read_out

    features, population = read_out(user, "u1")
    served = model.predict(features, population, now=features.now, top=3)
    again = loaded.predict(features, population, now=features.now, top=3)
    assert again.probabilities == pytest.approx(served.probabilities)
    assert len(served.probabilities) == len(served) == 3


def test_the_prior_reads_a_share_with_the_categories_of_an_average_event():
    """Every event holds two categories: each category's chance per event is twice its share."""
    from inference.events import EventRecord
    from inference.models.prior import prior_train

    events = [
        EventRecord(user_id="u", ts=1.7e9 + i, type="page_view", categories=(a, b), item_id=str(i))
        for i, (a, b) in enumerate([("x", "y"), ("x", "z"), ("y", "z"), ("x", "y")])
    ]
    prior = prior_train(events=events, categories=["x", "y", "z"])
    assert prior.calibration.per_event == 2.0
    share = 3 / 8  # x's part of the 8 category counts
    assert prior.calibration.probabilities(np.array([share]))[0] == pytest.approx(1 - (1 - 2 * share) ** 10)


def test_the_prior_calibration_reads_the_history_length():
    """The same share means a different chance for a visitor of 3 events and one of 300."""
    calibration = Calibration.from_dict(
        {"method": "history_logistic", "weights": [0.8, 0.3, 0.1], "b": -0.5, "horizon": 10, "per_event": 1.0}
    )
    assert calibration is not None and Calibration.from_dict(calibration.as_dict()) == calibration
    share = np.array([0.3, 0.05])
    thin, long = calibration.probabilities(share, events=3), calibration.probabilities(share, events=300)
    assert thin[0] > thin[1] and long[0] > long[1]  # monotone in the share: the ranking is kept
    assert not np.allclose(thin, long)


def test_the_prior_calibration_is_fitted_with_the_version_and_served():
    """Training a version fits the prior's calibration on its validation slice; a served prior behind
    the loaded version answers with those probabilities (and a cold visitor still gets an answer)."""
    from inference.models.prior import PriorModel
    from inference.serving.adapters import PriorAdapter, ServingFeatures, StoreAdapter
    from tests.inference.models.test_models import read_out

    model = model_train(algorithm="gbdt", events=favourite_stream(), categories=CATEGORIES, hyperparameters=SMALL["gbdt"])
    facts = model.training["prior_calibration"]
    assert facts["method"] == "history_logistic" and facts["validation_pairs"] > 0
    features, population = read_out(favourite_stream(users=2, events=10, seed=5), "u1")
    store = StoreAdapter(lambda user_id, now: (features, population))
    prior = PriorAdapter(store)
    before = prior.predict(ServingFeatures(features, population), now=features.now, top=3)
    store.model_loaded(model)
    after = prior.predict(ServingFeatures(features, population), now=features.now, top=3)
    line = Calibration.from_dict(facts)
    expected = PriorModel.from_population(population.counts, calibration=line).predict(
        features, population, now=features.now, top=3
    )
    assert [c for c, _ in after] == [c for c, _ in before]  # a monotone calibration: same ranking
    assert after.probabilities == pytest.approx(expected.probabilities)
    assert after.probabilities != pytest.approx(before.probabilities)
    assert prior.predict(ServingFeatures(None, population), now=features.now, top=3)


def test_the_calibrated_prior_is_better_calibrated_than_its_reading_on_movielens(shared_data):
    """On a real sample (a third of MovieLens's users, user split), the prior's fitted calibration
    lands closer to what the test users did next than the horizon-share reading it starts from."""
    from inference.evaluation.reading import events_read

    events = [e for e in events_read(shared_data / "movielens-latest-small", format="movielens") if int(e.user_id) % 3 == 0]
    report = interests_evaluate(
        events, dataset="movielens-third", split="user", scorers=model_scorers(["prior", "prior:reading"])
    )
    fitted = report["results"]["prior"]["calibration"]
    reading = report["results"]["prior:reading"]["calibration"]
    assert fitted["pairs"] == reading["pairs"] > 1000
    assert fitted["ece"] < reading["ece"]
    assert report["results"]["prior"]["training"]["calibration"]["method"] == "history_logistic"
