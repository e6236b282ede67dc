"""The ads tests' stand-in for inference honours the real score contract (the one check inference's own
answers pass), so selection tests run with the population baseline real answers give."""

from __future__ import annotations

import pytest

from tests.ads.conftest import FakeInterests
from tests.inference.serving.interests_contract import assert_interests_contract


def test_fake_interests_answers_pass_the_interests_contract():
    fake = FakeInterests()
    fake.scores[""] = {c: 0.2 for c in ("travel", "sports", "pets", "science", "movies")}
    fake.scores["u"] = {"travel": 0.7, "pets": 0.1}
    for user in ("", "u", "unknown"):
        assert_interests_contract(fake(user, top=10))
    assert fake.population(top=10).shares()["travel"] > 0  # a non-zero population baseline
    # the prior's shares are normalised over its answer
    assert fake("u").shares() == pytest.approx({"travel": 0.875, "pets": 0.125})
