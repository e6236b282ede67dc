"""The edge model: a small logistic model the visitor's browser scores, distilled from a served model.

Edge mode keeps a visitor's profile on the device (``inference/static/inference/edge.js``), so the
browser must compute the features and the score itself, in a few KB of plain JS. The edge model reads
only ``EDGE_FEATURES``, a subset of the pair features of ``inference.features`` that a compact profile
holds (counts, decayed shares, the recent sequence's categories, last seen, the population's shares
exported with the model), and is one logistic line over them:

    probability = sigmoid(bias + sum_i weight_i * feature_i)

It is *distilled*: fitted (logistic regression with soft targets, Newton's method) to the teacher's
calibrated probabilities on the teacher's own training samples, so it answers the same quantity as the
server (P(category among the next H interest events)) and needs no calibration of its own.
``EdgeModel.export()`` is the versioned static file the browser loads. The Python scoring below goes
through the one feature definition (``pair_features``); the JS mirrors it, and
``tests/browser/test_edge_parity.py`` holds the two to 1e-4 on the same events.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from inference.features import HALF_LIVES, INTEREST_TYPES, SEQUENCE_LENGTH
from inference.features.pairs import NEVER_SEEN_S
from inference.models.base import PairModel, manifest_read
from inference.models.calibration import Calibration
from inference.models.inputs import MAX_CANDIDATES, PAIR_FEATURE_NAMES, Sample
from inference.models.training import TrainingData

__all__ = [
    "EDGE_FEATURES",
    "EDGE_FORMAT",
    "EdgeModel",
    "edge_agreement",
    "edge_model_distill",
    "edge_file_latest",
    "edge_file_write",
]

EDGE_FORMAT = "adsite-edge-model/1"
EDGE_FEATURES: tuple[str, ...] = (
    "log_count",
    "count_share",
    "log_decayed_86400s",
    "log_decayed_604800s",
    "decayed_share_86400s",
    "decayed_share_604800s",
    "decayed_share_2592000s",
    "recent20_count",
    "recent50_count",
    "log_seconds_since_seen",
    "never_seen",
    "log_user_events",
    "frequency_rank",
    "population_share",
    "candidate_is_popular_only",
)
_COLUMNS = np.array([PAIR_FEATURE_NAMES.index(name) for name in EDGE_FEATURES])
# the popularity exported with the model: the most popular categories only (the file's size)
EXPORTED_CATEGORIES = 500


class EdgeModel(PairModel):
    algorithm = "edge"
    uses_sequence = False

    def __init__(self, *, weights: Sequence[float] | np.ndarray, bias: float, **kwargs: Any) -> None:
        kwargs.setdefault("calibration", Calibration("platt", a=1.0, b=0.0, input="raw"))
        super().__init__(**kwargs)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = float(bias)

    def score(self, sample: Sample) -> np.ndarray:
        """The logit of the probability (the calibration is the identity line)."""
        if sample.candidates.size == 0:
            return np.zeros(0)
        return sample.rows[:, _COLUMNS].astype(np.float64) @ self.weights + self.bias

    def export(self) -> dict[str, Any]:
        """The static file the browser loads (JSON; a few KB gzipped for a few hundred categories)."""
        return {
            "format": EDGE_FORMAT,
            "version": str(self.training.get("version", "")),
            "teacher": self.training.get("teacher", {}),
            "features": list(EDGE_FEATURES),
            "weights": [round(float(w), 7) for w in self.weights],
            "bias": round(self.bias, 7),
            "half_lives": {label: seconds for label, seconds in HALF_LIVES},
            "interest_types": sorted(INTEREST_TYPES),
            "sequence_length": SEQUENCE_LENGTH,
            "never_seen_s": NEVER_SEEN_S,
            "popular_k": self.popular_k,
            "max_candidates": MAX_CANDIDATES,
            # category -> count, most popular first (the population shares, the popular candidates and the
            # vocabulary: a category outside it is never a candidate, as on the server)
            "popularity": {c: self.popularity[c] for c in self.categories},
        }

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self._write_manifest(directory, {"weights": list(map(float, self.weights)), "bias": self.bias})
        (directory / "edge-model.json").write_text(json.dumps(self.export(), separators=(",", ":")), "utf-8")

    @classmethod
    def load(cls, directory: Path) -> Self:
        manifest = manifest_read(directory)
        return cls(weights=manifest["weights"], bias=manifest["bias"], **cls._kwargs_from_manifest(manifest))


def _soft_logistic(x: np.ndarray, target: np.ndarray, *, l2: float = 1e-3, iterations: int = 30) -> np.ndarray:
    """Weights (last: the bias) minimising the cross-entropy against soft targets, with a small L2."""
    design = np.hstack([x, np.ones((x.shape[0], 1))])
    w = np.zeros(design.shape[1])
    ridge = l2 * np.eye(design.shape[1])
    ridge[-1, -1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -30.0, 30.0)))
        gradient = design.T @ (p - target) / len(target) + ridge @ w
        hessian = (design.T * (p * (1.0 - p) + 1e-9)) @ design / len(target) + ridge
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.abs(step).max()) < 1e-9:
            break
    return w


def edge_model_distill(teacher: PairModel, data: TrainingData, *, version: str = "") -> EdgeModel:
    """An edge model fitted to ``teacher``'s calibrated probabilities on ``data.fit`` (the samples the
    teacher trained on); its agreement with the teacher on ``data.validation`` is kept in ``training``."""
    if not teacher.has_probabilities:
        raise ValueError(f"{teacher.algorithm} has no calibration to distil")
    ranked = sorted(teacher.popularity, key=lambda c: (-teacher.popularity[c], c))[:EXPORTED_CATEGORIES]
    popularity = {c: teacher.popularity[c] for c in ranked}
    # the student sees the population it will see in the browser: the exported shares
    kwargs = {"categories": ranked, "popularity": popularity, "hyperparameters": {"popular_k": teacher.popular_k}}
    rows, targets = [], []
    for sample, raw in zip(data.fit, teacher.score_many(data.fit), strict=True):
        if sample.candidates.size:
            rows.append(sample.rows[:, _COLUMNS].astype(np.float64))
            targets.append(teacher.sample_probabilities(sample, raw))
    if not rows:
        raise ValueError("no training samples to distil from")
    x, target = np.vstack(rows), np.concatenate(targets)
    centre, spread = x.mean(axis=0), x.std(axis=0)
    spread = np.where(spread < 1e-6, 1.0, spread)
    w = _soft_logistic((x - centre) / spread, target)
    weights = w[:-1] / spread
    bias = float(w[-1] - weights @ centre)
    training = {
        "version": version,
        "teacher": {"algorithm": teacher.algorithm, "version": str(teacher.training.get("version", ""))},
        "fit_pairs": int(len(target)),
    }
    student = EdgeModel(weights=weights, bias=bias, training=training, **kwargs)
    if data.validation:
        student.training["validation_agreement"] = edge_agreement(student, teacher, data.validation)
    return student


def edge_agreement(student: PairModel, teacher: PairModel, samples: Sequence[Sample], k: int = 5) -> dict[str, float]:
    """How far the student's ranking follows the teacher's on the same samples: the mean overlap of
    their top ``k`` and the NDCG@k of the student's order against the teacher's probabilities."""
    overlaps, ndcgs = [], []
    for sample, s_raw, t_raw in zip(
        samples, student.score_many(samples), teacher.score_many(samples), strict=True
    ):
        if sample.candidates.size == 0:
            continue
        gains = teacher.sample_probabilities(sample, t_raw) if teacher.has_probabilities else t_raw
        s_top = np.argsort(-s_raw, kind="stable")[:k]
        t_top = np.argsort(-gains, kind="stable")[:k]
        overlaps.append(len(set(s_top) & set(t_top)) / len(t_top))
        discounts = 1.0 / np.log2(np.arange(2, len(t_top) + 2))
        ideal = float(gains[t_top] @ discounts)
        ndcgs.append(float(gains[s_top] @ discounts) / ideal if ideal > 0 else 1.0)
    return {
        f"top{k}_overlap": round(float(np.mean(overlaps)), 4) if overlaps else math.nan,
        f"ndcg@{k}_vs_teacher": round(float(np.mean(ndcgs)), 4) if ndcgs else math.nan,
    }


def edge_file_write(model: EdgeModel, directory: Path) -> Path:
    """Write the exported file as ``edge-model-<version>.json`` (compact JSON) under ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    version = model.training.get("version") or "unversioned"
    path = directory / f"edge-model-{version}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(model.export(), separators=(",", ":")), encoding="utf-8")
    temporary.replace(path)  # readers never see half a file
    return path


def edge_file_latest(directory: Path) -> Path | None:
    """The newest exported file under ``directory`` (None before the first export)."""
    files = sorted(Path(directory).glob("edge-model-*.json"), key=lambda p: (p.stat().st_mtime, p.name))
    return files[-1] if files else None
