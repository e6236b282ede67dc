"""The score contract of ``Interests`` (``inference/serving/interests.py``), as one check that any
answer, real or faked, must pass: scores in (0, 1), best first, and ``shares()`` a distribution over
the answer's categories (each in [0, 1], summing to at most 1) that keeps the scores' order."""

from __future__ import annotations

import math

from inference.api import Interests


def assert_interests_contract(answer: Interests) -> None:
    assert isinstance(answer, Interests)
    scores = [score for _, score in answer.scores]
    assert all(0.0 <= s <= 1.0 and math.isfinite(s) for s in scores), answer.scores
    assert scores == sorted(scores, reverse=True), "scores are best first"
    shares = answer.shares()
    assert set(shares) <= {category for category, _ in answer.scores}
    assert all(0.0 <= v <= 1.0 for v in shares.values())
    assert sum(shares.values()) <= 1.0 + 1e-9
    ordered = [shares.get(category, 0.0) for category, _ in answer.scores]
    assert ordered == sorted(ordered, reverse=True), "shares keep the scores' order"
