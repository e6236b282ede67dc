"""The answer of a prediction: the frozen dataclass that crosses ``inference.api``.

What a score means (the contract callers rely on; they never look at ``served_by`` to read a number):

- ``scores`` rank the categories for this visitor, best first, each in (0, 1). They order one answer;
  across answers and models they are not comparable (a trained model answers a logistic of its own
  ranking score; the prior a logistic of its blended share). The REST API shows them as they are.
- ``shares()`` is the comparable reading: the answer as *interest shares*, the predicted share of the
  visitor's coming events in each category, summing to at most 1 (a category missing from the answer
  has share 0). The population's shares are the same reading of an unknown visitor's answer
  (``inference.api.population_interests``), so a visitor's share over the population's is an interest
  lift whatever model served either.
- An answer made from a page's own categories (``served_by == "context"``: built by the caller with
  ``Interests.from_shares``) holds its shares as its scores.
- ``probabilities`` (one per score, or empty) are calibrated: the chance that the category occurs among
  the visitor's next H interest events (``inference.models.calibration``). Unlike the scores they are
  comparable across answers and models; their reliability is measured by ``evaluate_interests``.
- ``history_events`` says how much the answer knew: 0 (``cold``: the population prior answers),
  fewer than ``THIN_HISTORY_EVENTS`` (``thin``: no trained model ever learned from so short a history,
  their training points start at the fifth interest event), or more (``established``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# who can answer: the learned models and their blend (the mean of their probabilities), the evaluation's
# baselines as rankers (the registry serves the best one on the validation slice when no learned model
# beats it), and the prior (last resort)
SERVED_BY = ("blend", "neural", "gbdt", "decayed", "frequency", "recent", "popularity", "prior")

CONTEXT = "context"
TRAINED = ("blend", "neural", "gbdt")
_EPS = 1e-9

# interest events below which a history is "thin": the training points start at this position
# (``inference.training.dataset.training_points``' ``min_history``)
THIN_HISTORY_EVENTS = 5
HISTORIES = ("cold", "thin", "established")

# why the preferred model did not answer; None when the first model in the chain answered
FALLBACK_REASONS = ("timeout", "over_budget", "error", "circuit_open", "cold_start", "no_model")


@dataclass(frozen=True, slots=True)
class Interests:
    scores: tuple[tuple[str, float], ...]  # (category slug, score), best first
    served_by: str  # one of SERVED_BY
    model_version: str
    fallback_reason: str | None
    elapsed_ms: float
    # (stage, ms) for the Server-Timing header: "features", then the model(s) tried
    stage_ms: tuple[tuple[str, float], ...] = ()
    # calibrated P(category among the next H interest events), one per score; empty: not calibrated
    probabilities: tuple[float, ...] = ()
    history_events: int = 0  # the visitor's interest events the answer saw (0: cold)

    @property
    def history(self) -> str:
        """``cold``, ``thin`` or ``established`` (see the module docstring)."""
        if self.history_events <= 0:
            return "cold"
        return "thin" if self.history_events < THIN_HISTORY_EVENTS else "established"

    def confidence(self) -> dict[str, object]:
        """How far to trust the answer: the history it knew, whether the prior (not a trained model)
        answered, and whether ``probability`` values are calibrated."""
        return {
            "history": self.history,
            "history_events": self.history_events,
            "from_prior": self.served_by == "prior",
            "calibrated": bool(self.probabilities),
        }

    def shares(self) -> dict[str, float]:
        """The answer as interest shares (see the module docstring): the logit undoes the logistic; the
        prior's logit is already a share (normalised over the answer), a trained model's ranking scores
        become shares by a softmax over the answer."""
        if not self.scores:
            return {}
        if self.served_by == CONTEXT:
            return {slug: min(max(float(v), 0.0), 1.0) for slug, v in self.scores}
        logits = {}
        for slug, v in self.scores:
            p = min(max(float(v), _EPS), 1.0 - _EPS)
            logits[slug] = math.log(p / (1.0 - p))
        if self.served_by not in TRAINED:  # the prior (and any score that is a logistic of a share)
            total = sum(max(x, 0.0) for x in logits.values())
            return {slug: max(x, 0.0) / total for slug, x in logits.items()} if total > 0 else {}
        top = max(logits.values())
        weights = {slug: math.exp(x - top) for slug, x in logits.items()}
        total = sum(weights.values())
        return {slug: w / total for slug, w in weights.items()}

    @classmethod
    def from_shares(
        cls,
        shares: Iterable[tuple[str, float]],
        *,
        served_by: str,
        model_version: str = "",
        fallback_reason: str | None = None,
        elapsed_ms: float = 0.0,
    ) -> Interests:
        """An answer whose ``shares()`` are ``shares`` (best first): scores as the prior and the
        models write them (a logistic of the share), or the shares themselves for ``"context"``. For
        callers that decide from known shares (a page's categories) and for test doubles."""
        ordered = sorted(((str(c), float(v)) for c, v in shares), key=lambda kv: -kv[1])
        if served_by == CONTEXT:
            scores = tuple(ordered)
        elif served_by in TRAINED:  # logit = log(share): the softmax over the answer gives the shares back
            scores = tuple((c, v / (1.0 + v)) for c, v in ordered if v > 0)
        else:  # logit = share
            scores = tuple((c, 1.0 / (1.0 + math.exp(-v))) for c, v in ordered)
        return cls(scores, served_by, model_version, fallback_reason, elapsed_ms)

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of the REST answer (built by hand: no serializer on the hot path)."""
        probabilities = self.probabilities
        if len(probabilities) == len(self.scores):
            categories = [
                {"category": category, "score": round(score, 6), "probability": round(p, 6)}
                for (category, score), p in zip(self.scores, probabilities, strict=True)
            ]
        else:
            categories = [
                {"category": category, "score": round(score, 6), "probability": None}
                for category, score in self.scores
            ]
        return {
            "categories": categories,
            "served_by": self.served_by,
            "model_version": self.model_version,
            "fallback_reason": self.fallback_reason,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "confidence": self.confidence(),
        }
