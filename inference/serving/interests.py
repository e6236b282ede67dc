"""The answer of a prediction: the frozen dataclass that crosses ``inference.api``."""

from __future__ import annotations

from dataclasses import dataclass

# who can answer: the learned models, the evaluation's baselines as rankers (the registry serves the best
# one on the validation slice when no learned model beats it), and the prior (last resort)
SERVED_BY = ("neural", "gbdt", "decayed", "frequency", "recent", "popularity", "prior")
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

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of the REST answer (built by hand: no serializer on the hot path)."""
        return {
            "categories": [
                {"category": category, "score": round(score, 6)} for category, score in self.scores
            ],
            "served_by": self.served_by,
            "model_version": self.model_version,
            "fallback_reason": self.fallback_reason,
            "elapsed_ms": round(self.elapsed_ms, 3),
        }
