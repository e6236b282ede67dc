"""What an interest score means across the inference facade: ``Interests.shares()`` reads every answer
the same way, whatever model served it, so callers never look at ``served_by`` to read a number."""

from __future__ import annotations

import pytest

from inference.api import Interests
from inference.models.prior import PriorModel
from tests.inference.serving.interests_contract import assert_interests_contract

SHARES = [("travel", 0.5), ("sports", 0.3), ("pets", 0.2)]


@pytest.mark.parametrize("served_by", ["neural", "gbdt", "prior", "context"])
def test_an_answer_made_from_shares_reads_back_as_those_shares(served_by):
    answer = Interests.from_shares(SHARES, served_by=served_by)
    assert_interests_contract(answer)
    assert answer.shares() == pytest.approx(dict(SHARES))


def test_the_priors_real_answer_reads_as_the_populations_shares():
    prior = PriorModel.from_population({"news": 50.0, "sport": 30.0, "food": 20.0})
    answer = Interests(tuple(prior.predict(None, None, now=0.0, top=3)), "prior", "prior", "cold_start", 0.1)
    assert_interests_contract(answer)
    assert answer.shares() == pytest.approx({"news": 0.5, "sport": 0.3, "food": 0.2}, abs=1e-6)


def test_a_trained_models_scores_read_as_a_softmax_over_the_answer():
    answer = Interests((("a", 0.9), ("b", 0.5)), "gbdt", "gbdt-1", None, 0.1)
    assert_interests_contract(answer)
    shares = answer.shares()
    assert shares["a"] == pytest.approx(0.9 / (0.9 + 0.1))  # logits log 9 and 0: softmax 9/10, 1/10
    assert sum(shares.values()) == pytest.approx(1.0)


def test_an_empty_answer_has_no_shares():
    assert Interests((), "prior", "none", "error", 0.0).shares() == {}
