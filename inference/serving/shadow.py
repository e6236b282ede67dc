"""Shadow mode: a candidate version loaded and warmed up beside the serving ones that never serves.

The registry poll reads the shadow config; ``Shadow.refresh`` loads the configured version (or drops
it). After a model (neural or gbdt) has answered, a sampled request is also scored by the shadow, only
if its p99 fits in the time the deadline has left and its own breaker allows it; its top-k overlap with
the served answer and its latency go to the ``inference_shadow_*`` metrics. The served answer is
computed first and returned unchanged; a shadow failure is counted (``inference_shadow_errors_total``),
never raised, and opens its breaker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inference.serving import metrics
from inference.serving.batcher import BatcherUnavailable
from inference.serving.deadline import Deadline
from inference.serving.interests import Interests
from inference.serving.slots import InvalidOutput, LoadedModel, ShadowReader, ShadowSlot, validated_scores

logger = logging.getLogger(__name__)

__all__ = ["Shadow", "topk_overlap"]


def topk_overlap(served: Sequence[tuple[str, float]], shadow: Sequence[tuple[str, float]], k: int) -> float:
    """Share of the served answer's top-k categories that the shadow's top-k also holds (1.0: the
    same set, in any order). k is capped by the served answer's length; an empty answer agrees fully."""
    k = min(k, len(served))
    if k <= 0:
        return 1.0
    wanted = {category for category, _ in served[:k]}
    return len(wanted.intersection(category for category, _ in shadow[:k])) / k


class Shadow:
    """The shadow this process holds (``current``: None when there is none) and its scoring."""

    def __init__(
        self,
        *,
        reader: ShadowReader | None,
        sampler: Callable[[], float],
        timer: Callable[[], float],
    ) -> None:
        self._reader = reader
        self._sampler = sampler
        self._timer = timer
        # replaced whole, read once per request
        self.current: ShadowSlot | None = None
        self._failed = ""
        self.error = ""

    def status(self) -> dict[str, str]:
        """The shadow this process holds: version, sample rate, top-k, breaker (empty: none) and the
        last load error."""
        shadow = self.current
        out: dict[str, str] = {"error": self.error} if self.error else {}
        if shadow is not None:
            out.update(
                version=shadow.slot.version,
                algorithm=shadow.slot.name,
                sample_rate=str(shadow.sample_rate),
                top_k=str(shadow.top_k),
                breaker=shadow.slot.breaker.state,
            )
        return out

    def refresh(self, *, served: set[str], load: Callable[[str, str, Path], LoadedModel]) -> bool:
        """Load (and warm up) the configured shadow version, or drop it; True when it changed. A
        failure to read the config keeps the current shadow; a failure to load leaves none."""
        if self._reader is None:
            return False
        try:
            wanted = self._reader()
        except Exception as exc:
            logger.warning("inference.shadow_poll_failed: %r", exc)
            return False
        held = self.current
        if wanted is None or wanted.version in served:
            # no shadow, or it has become a serving version: nothing left to compare it with
            self._set(None)
            self.error = ""
            return held is not None
        if held is not None and held.slot.version == wanted.version:
            if (held.sample_rate, held.top_k) == (wanted.sample_rate, wanted.top_k):
                return False
            self.current = ShadowSlot(held.slot, float(wanted.sample_rate), int(wanted.top_k))
            return True
        if self._failed == wanted.version:
            return False  # already failed to load: do not retry every poll
        slot = load(wanted.algorithm, wanted.version, Path(wanted.artifact_dir))
        if slot.model is None:
            self._failed, self.error = wanted.version, slot.error
            self._set(None)
            return held is not None
        self.error = ""
        self._set(ShadowSlot(slot, float(wanted.sample_rate), int(wanted.top_k)))
        logger.info("inference.shadow_loaded %s at %.3f", wanted.version, wanted.sample_rate)
        return True

    def _set(self, new: ShadowSlot | None) -> None:
        old, self.current = self.current, new  # one reference: a request sees the old or the new
        if old is not None and (new is None or new.slot is not old.slot):
            metrics.SHADOW_LOADED.labels(old.slot.version).set(0)
        if new is not None:
            metrics.SHADOW_LOADED.labels(new.slot.version).set(1)

    def score(
        self, shadow: ShadowSlot, features: Any, answer: Interests, *, now: float, deadline: Deadline
    ) -> None:
        """Score a sampled request with the shadow after the served answer was computed. Never raises
        and never changes ``answer``: skipped when the time left does not fit the shadow's p99."""
        slot = shadow.slot
        try:
            if self._sampler() >= shadow.sample_rate or not answer.scores or slot.model is None:
                return
            k = min(shadow.top_k, len(answer.scores))
            p99 = slot.latency.p99()
            remaining = deadline.remaining_ms()
            if remaining <= 0 or (p99 is not None and p99 > remaining):
                metrics.SHADOW_SKIPPED_TOTAL.labels(slot.version, "no_time").inc()
                return
            if not slot.breaker.allow():
                metrics.SHADOW_SKIPPED_TOTAL.labels(slot.version, "circuit_open").inc()
                return
            started = self._timer()
            slot.last_call = started
            try:
                scores = validated_scores(slot.model.predict(features, now=now, top=k), k, slot.score_range)
            except BatcherUnavailable as exc:
                slot.breaker.release()  # the shared GPU queue is busy: not the shadow's fault
                metrics.SHADOW_ERRORS_TOTAL.labels(slot.version, f"batcher_{exc.reason}").inc()
                return
            except Exception as exc:
                slot.breaker.record_failure()
                kind = "invalid_output" if isinstance(exc, InvalidOutput) else "exception"
                metrics.SHADOW_ERRORS_TOTAL.labels(slot.version, kind).inc()
                logger.debug("inference.shadow_failed %s: %r", slot.version, exc)
                return
            took = (self._timer() - started) * 1000.0
            slot.latency.record(took)
            metrics.SHADOW_SECONDS.labels(slot.version).observe(took / 1000.0)
            if deadline.remaining_ms() < 0:
                # it did score, but past the request's deadline: count it, and let repeated overruns
                # open the breaker so that a slow shadow stops costing requests time
                slot.breaker.record_failure()
                metrics.SHADOW_ERRORS_TOTAL.labels(slot.version, "overrun").inc()
            else:
                slot.breaker.record_success()
            metrics.SHADOW_AGREEMENT.labels(slot.version, answer.served_by).observe(
                topk_overlap(answer.scores, scores, k)
            )
            if scores and scores[0][0] == answer.scores[0][0]:
                metrics.SHADOW_TOP1_MATCH_TOTAL.labels(slot.version, answer.served_by).inc()
        except Exception:  # the shadow's bookkeeping must never reach the request
            logger.exception("inference.shadow_bookkeeping_failed")
