"""Calibrated interest probabilities, and how reliable they are.

A ranker's score orders categories; a *probability* says how likely the category is to occur among
the visitor's next H interest events (H = the training horizon, 10 by default: the labels the
models learn and the evaluation's truth). ``Calibration`` maps a model's raw score to that
probability with a monotone function, so the ranking never changes:

- ``platt`` (the learned models): ``p = sigmoid(a * x + b)``, ``a`` and ``b`` fitted by logistic
  regression on the candidate pairs of the *validation slice* at training time (labels: the category
  occurs in the next H events) and stored in the model's manifest. ``x`` (``input``) is the raw score
  for a model trained on absolute labels (LightGBM's ``binary``), and the raw score's log-softmax over
  the user's candidates for a model trained with a loss blind to a shift of one user's scores (the
  network's listwise softmax, ``lambdarank``): such a model's raw level moves from user to user with
  user-level features and means nothing alone (a Platt line on the raw scores of the network was 0.02
  off on its validation slice and 0.60 off on the test users of a small stream). Two numbers and a
  normaliser: the browser's edge scorer applies the same line.
- ``horizon_share`` (the prior): the prior's raw score is a share ``s`` of the visitor's (or the
  population's) interest; read as the chance of the category per event, ``p = 1 - (1 - s)^H``.
  Read alone it is not calibrated (the same share means a different chance for a visitor with 3
  events and one with 300), so training fits
- ``history_logistic`` (the prior, fitted): a logistic regression over ``x = logit`` of that
  horizon-share reading, ``m = log1p(events in the visitor's history)`` and ``x * m``, on the same
  validation slice as the learned models' Platt line (``history_calibration_fit``), kept with the
  version and applied by the served prior.

``reliability(probabilities, labels)`` and ``expected_calibration_error`` measure the result
(equal-width bins; ECE = the pair-weighted mean gap between predicted and observed rates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BINS",
    "Calibration",
    "calibration_fit",
    "history_calibration_fit",
    "expected_calibration_error",
    "reliability",
]

BINS = 10
_EPS = 1e-7


@dataclass(frozen=True, slots=True)
class Calibration:
    method: str  # "platt", "horizon_share" or "history_logistic"
    a: float = 1.0
    b: float = 0.0
    horizon: int = 10
    # horizon_share: categories per interest event (a movie has several genres: a genre's chance per
    # event is its share of the category counts times this)
    per_event: float = 1.0
    input: str = "raw"  # "raw" or "log_softmax" (over one user's candidates)
    # history_logistic: the weights of (logit of the horizon-share reading, log1p(events), their product)
    weights: tuple[float, float, float] = (1.0, 0.0, 0.0)

    def probabilities(self, raw: np.ndarray, *, events: float | np.ndarray = 0.0) -> np.ndarray:
        """P(category among the next H interest events) for the raw scores of *one user's candidates*
        (all of them: the log-softmax input normalises over the set); ``events``: the visitor's history
        length (read by ``history_logistic`` only)."""
        raw = self.line_input(raw)
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-np.clip(self.a * raw + self.b, -30.0, 30.0)))
        if self.method == "horizon_share":
            share = np.clip(raw * self.per_event, 0.0, 1.0)
            return 1.0 - (1.0 - share) ** self.horizon
        if self.method == "history_logistic":
            x = _history_design(self._reading(raw), events) @ np.asarray(self.weights) + self.b
            return 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))
        raise ValueError(f"unknown calibration method {self.method!r}")

    def _reading(self, share: np.ndarray) -> np.ndarray:
        return 1.0 - (1.0 - np.clip(share * self.per_event, 0.0, 1.0)) ** self.horizon

    def line_input(self, raw: np.ndarray) -> np.ndarray:
        """``x`` of the line for one user's candidate scores (the raw scores, or their log-softmax)."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.input == "log_softmax" and raw.size:
            top = float(raw.max())
            return raw - (top + math.log(float(np.exp(raw - top).sum())))
        return raw

    def probabilities_rows(self, scores: np.ndarray, scored: np.ndarray) -> np.ndarray:
        """``probabilities`` row by row of a [user, category] matrix; NaN where ``scored`` is False."""
        scores = np.asarray(scores, dtype=np.float64)
        out = np.full(scores.shape, np.nan)
        for row in range(scores.shape[0]):
            mask = scored[row]
            if mask.any():
                out[row, mask] = self.probabilities(np.asarray(scores[row])[mask])
        return out

    def as_dict(self) -> dict[str, Any]:
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b, "input": self.input}
        if self.method == "history_logistic":
            return {
                "method": self.method, "weights": list(self.weights), "b": self.b,
                "horizon": self.horizon, "per_event": self.per_event,
            }
        return {"method": self.method, "horizon": self.horizon, "per_event": self.per_event}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Calibration | None:
        """The manifest's entry back (``None``: a model saved before calibration existed)."""
        if not data:
            return None
        method = str(data.get("method", ""))
        if method == "platt":
            return cls("platt", a=float(data["a"]), b=float(data["b"]), input=str(data.get("input", "raw")))
        if method == "horizon_share":
            return cls(
                "horizon_share", horizon=int(data.get("horizon", 10)), per_event=float(data.get("per_event", 1.0))
            )
        if method == "history_logistic":
            w = [float(v) for v in data["weights"]]
            if len(w) != 3:
                raise ValueError("history_logistic needs three weights")
            return cls(
                "history_logistic", weights=(w[0], w[1], w[2]), b=float(data["b"]),
                horizon=int(data.get("horizon", 10)), per_event=float(data.get("per_event", 1.0)),
            )
        raise ValueError(f"unknown calibration method {method!r}")


def _history_design(reading: np.ndarray, events: float | np.ndarray) -> np.ndarray:
    """[logit(reading), log1p(events), their product] per candidate (the reading clipped off 0 and 1)."""
    p = np.clip(np.asarray(reading, dtype=np.float64), 1e-4, 1.0 - 1e-4)
    x = np.log(p / (1.0 - p))
    m = np.broadcast_to(np.log1p(np.maximum(np.asarray(events, dtype=np.float64), 0.0)), x.shape)
    return np.stack([x, m, x * m], axis=1) if x.ndim == 1 else np.stack([x, m, x * m], axis=-1)


def history_calibration_fit(
    reading: Calibration, raw: Sequence[np.ndarray], events: Sequence[float], labels: Sequence[np.ndarray]
) -> tuple[Calibration, dict[str, Any]]:
    """The prior's ``history_logistic`` calibration from the validation slice: per sample its shares
    (``raw``), the visitor's history length and the next-H counts; ``reading`` is the horizon-share
    reading it starts from. Too small a slice (or one class only) keeps ``reading``. The facts: pairs,
    the slice's ECE with the reading and with the fitted calibration."""
    from sklearn.linear_model import LogisticRegression

    keep = [i for i, r in enumerate(raw) if np.size(r)]
    if not keep:
        return reading, {**reading.as_dict(), "validation_pairs": 0}
    before = np.concatenate([reading.probabilities(raw[i]) for i in keep])
    design = np.concatenate([_history_design(reading.probabilities(raw[i]), events[i]) for i in keep])
    truth = np.concatenate([np.asarray(labels[i]) > 0 for i in keep]).astype(np.float64)
    facts: dict[str, Any] = {"validation_pairs": int(truth.size)}
    if truth.size < 10 or truth.min() == truth.max():
        return reading, {**reading.as_dict(), **facts}
    fitted = LogisticRegression(C=1.0, max_iter=1000).fit(design, truth)
    w = [float(v) for v in fitted.coef_[0]]
    calibration = Calibration(
        "history_logistic", weights=(w[0], w[1], w[2]), b=float(fitted.intercept_[0]),
        horizon=reading.horizon, per_event=reading.per_event,
    )
    after = np.concatenate([calibration.probabilities(raw[i], events=events[i]) for i in keep])
    facts["validation_ece_before"] = round(expected_calibration_error(before, truth), 4)
    facts["validation_ece"] = round(expected_calibration_error(after, truth), 4)
    return calibration, {**calibration.as_dict(), **facts}


def _platt(raw: np.ndarray, labels: np.ndarray, *, iterations: int = 50) -> tuple[float, float]:
    """Logistic regression of ``labels`` on ``raw`` (Newton's method, Platt's smoothed targets so
    that a separable slice does not drive ``a`` to infinity)."""
    positives = float(labels.sum())
    negatives = float(labels.size - positives)
    target = np.where(labels > 0, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))
    # standardise for a well-conditioned Newton step, undo at the end
    centre = float(raw.mean())
    spread = float(raw.std()) or 1.0
    x = (raw - centre) / spread
    prior = (positives + 1.0) / (labels.size + 2.0)
    w = np.array([0.0, math.log(prior / (1.0 - prior))])
    design = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -30.0, 30.0)))
        gradient = design.T @ (p - target)
        weights = p * (1.0 - p) + 1e-12
        hessian = design.T @ (design * weights[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w = w - step
        if float(np.abs(step).max()) < 1e-10:
            break
    a = float(w[0] / spread)
    return a, float(w[1] - a * centre)


def calibration_fit(
    raw: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, input: str = "raw"
) -> tuple[Calibration, dict[str, Any]]:
    """A Platt calibration from the validation slice's raw candidate scores and next-H counts (one
    array per sample), and the facts kept with the model: pairs, ECE before (a logistic of the raw
    score, what the API's ``score`` is) and after, on the same slice."""
    unit = Calibration("platt", input=input)
    x_parts = [unit.line_input(r) for r in raw if np.size(r)]
    x = np.concatenate(x_parts) if x_parts else np.zeros(0)
    scores = np.concatenate([np.asarray(r, dtype=np.float64) for r in raw]) if raw else np.zeros(0)
    truth = np.concatenate([np.asarray(t) > 0 for t in labels]).astype(np.float64) if labels else np.zeros(0)
    if x.size < 2 or truth.min(initial=1.0) == truth.max(initial=0.0):
        # no validation slice, or one class only: a fit means nothing; the rate itself, flat
        rate = float(np.clip(truth.mean() if truth.size else 0.5, _EPS, 1.0 - _EPS))
        calibration = Calibration("platt", a=0.0, b=math.log(rate / (1.0 - rate)), input=input)
    else:
        a, b = _platt(x, truth)
        calibration = Calibration("platt", a=a, b=b, input=input)
    facts: dict[str, Any] = {**calibration.as_dict(), "validation_pairs": int(x.size)}
    if x.size:
        before = 1.0 / (1.0 + np.exp(-np.clip(scores, -30.0, 30.0)))
        after = np.concatenate([calibration.probabilities(r) for r in raw if np.size(r)])
        facts["validation_ece_before"] = round(expected_calibration_error(before, truth), 4)
        facts["validation_ece"] = round(expected_calibration_error(after, truth), 4)
    return calibration, facts


def reliability(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = BINS) -> list[dict[str, Any]]:
    """The reliability diagram's points: per equal-width probability bin holding pairs, its range,
    the pairs in it, their mean predicted probability and the observed rate of the category."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel() > 0
    keep = np.isfinite(p)
    p, y = p[keep], y[keep]
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if not n:
            continue
        out.append(
            {
                "bin": [round(b / bins, 3), round((b + 1) / bins, 3)],
                "pairs": n,
                "predicted": round(float(p[inside].mean()), 4),
                "observed": round(float(y[inside].mean()), 4),
            }
        )
    return out


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = BINS) -> float:
    """Sum over bins of (pairs in bin / pairs) * |mean predicted - observed rate| (NaN pairs ignored)."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel() > 0
    keep = np.isfinite(p)
    p, y = p[keep], y[keep]
    if not p.size:
        return float("nan")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if n:
            total += n * abs(float(p[inside].mean()) - float(y[inside].mean()))
    return total / p.size
