"""The network and LightGBM as one ranker: the mean of their calibrated probabilities.

Each member answers P(category among the visitor's next H interest events) for every candidate
(its own calibration, fitted on its validation slice); the blend ranks by the mean of those
probabilities, with equal weights (nothing is fitted on the blend, so nothing can overfit it). The two
models err in different places, so their mean ranks more steadily than either: on the Taobao
development users it beats each of them at every seed measured (``docs/quality.md``).

The members must share the category vocabulary and the candidate rule (``popular_k``), and those that
read the recent sequence its item hashing (``item_buckets``): the blend builds one sample and hands it to
both. A blend directory holds its manifest and each member's own directory (``neural/``, ``gbdt/``), so a
version is complete on its own and a later retirement of a member version does not change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from inference.models.base import NOT_A_CANDIDATE, PairModel, manifest_read
from inference.models.inputs import Sample

__all__ = ["BLEND_MEMBERS", "BlendModel", "BlendMismatch"]

# the learned algorithms a blend averages, in its manifest's order
BLEND_MEMBERS = ("neural", "gbdt")

# a mean probability of exactly 0 or 1 still has a finite logit (the ranking score the API squashes back)
_EPS = 1e-9


class BlendMismatch(ValueError):
    """The members cannot be blended: another category vocabulary, candidate rule or no calibration."""


class BlendModel(PairModel):
    algorithm: ClassVar[str] = "blend"

    def __init__(self, members: Sequence[PairModel], *, training: dict[str, Any] | None = None) -> None:
        if len(members) < 2:
            raise BlendMismatch("a blend needs at least two members")
        first = members[0]
        for member in members:
            if member.calibration is None:
                raise BlendMismatch(f"{member.algorithm} has no calibration: its scores are no probabilities")
            if member.categories != first.categories:
                raise BlendMismatch(
                    f"{member.algorithm} knows {len(member.categories)} categories, "
                    f"{first.algorithm} {len(first.categories)} (or another order): train them together"
                )
            if member.popular_k != first.popular_k:
                raise BlendMismatch(f"{member.algorithm} picks its candidates by other rules than {first.algorithm}")
        # the recent sequence's item hashing, shared by the members that read the sequence
        buckets = {m.item_buckets for m in members if m.uses_sequence} or {first.item_buckets}
        if len(buckets) > 1:
            raise BlendMismatch(f"the members hash the visitor's items into {sorted(buckets)} buckets")
        self.members = tuple(members)
        super().__init__(
            categories=first.categories,
            popularity=first.popularity,
            hyperparameters={
                "members": [m.algorithm for m in members],
                "popular_k": first.popular_k,
                "item_buckets": buckets.pop(),
            },
            training={
                "members": {m.algorithm: dict(m.training) for m in members},
                # the cold visitors' prior is calibrated with each member; the first one's is served
                **({"prior_calibration": first.training["prior_calibration"]}
                   if "prior_calibration" in first.training else {}),
                **(training or {}),
            },
        )

    @property
    def uses_sequence(self) -> bool:  # type: ignore[override]
        return any(m.uses_sequence for m in self.members)

    @property
    def has_probabilities(self) -> bool:
        return True

    # -- scoring: the members' probabilities, averaged; the score is their logit ----------------
    def _blend(self, samples: Sequence[Sample], per_member: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        out = []
        for row, sample in enumerate(samples):
            if sample.candidates.size == 0:
                out.append(np.zeros(0))
                continue
            mean = np.mean(
                [m.sample_probabilities(sample, scores[row]) for m, scores in zip(self.members, per_member, strict=True)],
                axis=0,
            )
            p = np.clip(mean, _EPS, 1.0 - _EPS)
            out.append(np.log(p) - np.log1p(-p))
        return out

    def score(self, sample: Sample) -> np.ndarray:
        return self._blend([sample], [[m.score(sample)] for m in self.members])[0]

    def score_many(self, samples: Sequence[Sample]) -> list[np.ndarray]:
        return self._blend(samples, [m.score_many(samples) for m in self.members])

    def sample_probabilities(self, sample: Sample, scores: np.ndarray) -> np.ndarray:
        """The mean of the members' probabilities (the score is its logit)."""
        return 1.0 / (1.0 + np.exp(-np.asarray(scores, dtype=np.float64)))

    def probabilities_matrix(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        candidate = scores > NOT_A_CANDIDATE
        out = np.full(scores.shape, np.nan)
        out[candidate] = 1.0 / (1.0 + np.exp(-scores[candidate]))
        return out

    def calibrate(self, validation: Sequence[Sample]) -> Self:
        """Nothing to fit: each member carries its own calibration."""
        return self

    # -- artifacts -------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        for member in self.members:
            member.save(directory / member.algorithm)  # type: ignore[attr-defined]  # every model saves
        self._write_manifest(directory)

    @classmethod
    def load(cls, directory: Path) -> Self:
        from inference.models import model_load

        directory = Path(directory)
        manifest = manifest_read(directory)
        if manifest.get("algorithm") != cls.algorithm:
            raise ValueError(f"manifest is for {manifest.get('algorithm')!r}, not {cls.algorithm!r}")
        names = list(manifest["hyperparameters"]["members"])
        blend = cls([model_load(directory / name) for name in names])
        blend.training = dict(manifest.get("training", {}))
        return blend
