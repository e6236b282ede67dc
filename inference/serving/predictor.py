"""The per-process predictor: answers in time through the fallback chain.

Promises:

- Start-up loads every active version and warms it up with a dummy prediction before serving it
  (``loading``); a background thread polls the registry and hot-swaps new versions (``polling``),
  and times the models no request called (``probes``).
- ``predict`` never raises: it tries the active rankers (neural, gbdt, and the baseline ranker the
  registry keeps active: decayed, frequency, recent or popularity) best first by their NDCG@5 on the
  training run's validation slice (``slots.serving_order``; a learned model worse than the best
  baseline is not active at all), then the prior. A model is tried only if its
  circuit breaker allows it and its recent p99 fits in the time left; an exception, a NaN or
  out-of-range score, or an overrun of the deadline falls through to the next. The fallback reason
  is that of the first ranker tried that did not answer; ``no_model`` when none failed but a learned
  algorithm named before the one that answered (neural before gbdt) has no active version. The prior always
  answers (population popularity blended with the user's own decayed counts, or the population only
  when the feature store cannot be read).
- Shadow mode (``shadow``): after a model has answered, a sampled request is also scored by the
  shadow version; the served answer is computed first and returned unchanged.

Time is read from two injected clocks: ``clock`` (wall time, seconds: the ``now`` the models score
at) and ``timer`` (monotonic seconds: latencies, the latency windows' ages, probes and polls).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from inference.serving import metrics
from inference.serving.batcher import BatcherUnavailable
from inference.serving.breaker import STATE_VALUE
from inference.serving.deadline import Deadline
from inference.serving.interests import Interests
from inference.serving.loading import ModelSet, single_thread_math
from inference.serving.polling import RegistryPoller
from inference.serving.probes import probe_idle
from inference.serving.shadow import Shadow, topk_overlap
from inference.serving.slots import (
    CHAIN,
    LEARNED,
    ActiveVersionLike,
    FeatureAccess,
    InvalidOutput,
    LoadedModel,
    ModelLoader,
    PredictorConfig,
    PriorScorer,
    RegistryReader,
    ServingModel,
    ShadowReader,
    ShadowSlot,
    ShadowVersionLike,
    validated_scores,
)
from inference.serving.stored import StoredAnswers

logger = logging.getLogger(__name__)
# set on a thread while it recomputes a stored answer: that prediction is no visitor's answer, so it is
# counted as a recompute, not in the served and fallback totals (its reads count when they are served)
_recomputing = threading.local()

# the names this module has always offered (the types now live in ``slots``)
__all__ = [
    "CHAIN",
    "ActiveVersionLike",
    "FeatureAccess",
    "InvalidOutput",
    "LoadedModel",
    "ModelLoader",
    "Predictor",
    "PredictorConfig",
    "PriorScorer",
    "RegistryReader",
    "ServingModel",
    "ShadowReader",
    "ShadowSlot",
    "ShadowVersionLike",
    "topk_overlap",
]


class Predictor:
    def __init__(
        self,
        *,
        features: FeatureAccess,
        prior: PriorScorer,
        loader: ModelLoader,
        registry_reader: RegistryReader,
        config: PredictorConfig | None = None,
        clock: Callable[[], float] = time.time,
        shadow_reader: ShadowReader | None = None,
        sampler: Callable[[], float] = random.random,
        poll_thread_exit: Callable[[], None] | None = None,
        poll_thread_after_poll: Callable[[], None] | None = None,
        poll_thread_start: Callable[[], None] | None = None,
        timer: Callable[[], float] = time.perf_counter,
        answers: StoredAnswers | None = None,
    ) -> None:
        self.config = config or PredictorConfig()
        self._answers = answers  # answers kept fresh on write (``stored``); None: every read predicts live
        self._features = features
        self._prior = prior
        self._clock = clock
        self._timer = timer
        self._models = ModelSet(
            features=features,
            loader=loader,
            registry_reader=registry_reader,
            config=self.config,
            clock=clock,
            timer=timer,
        )
        self._shadow = Shadow(reader=shadow_reader, sampler=sampler, timer=timer)
        self._refresh_lock = threading.Lock()
        self._poller = RegistryPoller(
            refresh=self.refresh,
            probe=self.probe_idle,
            poll_seconds=self.config.poll_seconds,
            probe_period=self.config.probe_period(),
            timer=timer,
            on_exit=poll_thread_exit,
            after_poll=poll_thread_after_poll,
            on_start=poll_thread_start,
        )

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self, *, background: bool = True) -> Predictor:
        """Load the active versions now; then (optionally) keep polling the registry in a thread."""
        single_thread_math()
        try:
            self.refresh()
        except Exception as exc:  # the registry unreadable at start-up: serve the prior, keep polling
            self._poller.last_error = repr(exc)
            logger.exception("inference.registry_poll_failed")
        if background and self.config.poll_seconds > 0:
            self._poller.start()
        return self

    def stop(self) -> None:
        self._poller.stop()

    @property
    def last_refresh_error(self) -> str:
        """The last registry poll's error ("" after a successful one)."""
        return self._poller.last_error

    @property
    def shadow_error(self) -> str:
        return self._shadow.error

    def refresh(self) -> bool:
        """Poll the registry once; load changed versions (and the shadow) fully, then swap them in.
        True if anything changed."""
        with self._refresh_lock:
            swapped = self._models.refresh()
            shadow_changed = self._shadow.refresh(served=self._models.versions(), load=self._models.load)
            return swapped or shadow_changed

    def probe_idle(self) -> list[str]:
        """Time one call of each loaded model (and the shadow) that no request called during the last
        probe period (see ``probes``). Returns the models probed."""
        slots = list(self._models.slots.items())
        shadow = self._shadow.current
        if shadow is not None:
            slots.append((f"shadow:{shadow.slot.version}", shadow.slot))
        return probe_idle(
            slots,
            features=self._features,
            idle_for_s=self.config.probe_period(),
            clock=self._clock,
            timer=self._timer,
        )

    def loaded(self) -> dict[str, str]:
        """algorithm -> version for the models this process serves now (failed loads excluded)."""
        return self._models.loaded()

    def load_errors(self) -> dict[str, str]:
        return self._models.load_errors()

    def breaker_states(self) -> dict[str, str]:
        return self._models.breaker_states()

    def shadow_status(self) -> dict[str, str]:
        """The shadow this process holds: version, sample rate, top-k, breaker (empty: none) and the
        last load error."""
        return self._shadow.status()

    # --- answering: the fallback chain -----------------------------------------------------------
    def predict(
        self, user_id: str, *, deadline: Deadline, top: int = 10, now: float | None = None
    ) -> Interests:
        """The user's interests at ``now`` (default: the predictor's clock): the store's read-out and
        every ranker see the same time, so a replay at a past cut-off serves what a live site would."""
        stages: list[tuple[str, float]] = []
        started = self._timer()
        # a replay at a past `now` always predicts; so does every read while a shadow runs, since the shadow
        # is compared with live answers only and a stored read would hide the traffic it is meant to see
        if now is None and self._answers is not None and self._shadow.current is None:
            now = self._clock()
            try:
                stored = self._answers.current(user_id, preferred=self._preferred(), top=top, now=now)
            except Exception as exc:  # store down: the features read would fail the same way
                logger.warning("inference.feature_store_unavailable: %r", exc)
                stages.append(("stored", (self._timer() - started) * 1000.0))
                metrics.STORED_READS_TOTAL.labels("error").inc()
                return self._prior_answer(None, "error", now=now, top=top, deadline=deadline, stages=stages)
            stages.append(("stored", (self._timer() - started) * 1000.0))
            if stored is not None:
                metrics.STORED_READS_TOTAL.labels("stored").inc()
                answer = self._answer(stored.scores[:top], stored.served_by, stored.model_version,
                                      stored.fallback_reason, deadline, stages)
                return replace(answer, probabilities=stored.probabilities[:top],
                               history_events=stored.history_events)
            metrics.STORED_READS_TOTAL.labels("live").inc()
            started = self._timer()
        now = self._clock() if now is None else now
        try:
            features = self._features.read(user_id, now=now)
        except Exception as exc:  # store down: degrade to the population prior, never crash
            logger.warning("inference.feature_store_unavailable: %r", exc)
            stages.append(("features", (self._timer() - started) * 1000.0))
            return self._prior_answer(None, "error", now=now, top=top, deadline=deadline, stages=stages)
        features_ms = (self._timer() - started) * 1000.0
        stages.append(("features", features_ms))
        metrics.PREDICT_SECONDS.labels("all", "features").observe(features_ms / 1000.0)
        if self._features.is_cold(features):
            return self._prior_answer(
                features, "cold_start", now=now, top=top, deadline=deadline, stages=stages
            )

        # read the reference once: this request uses one consistent set, in its serving order (best on
        # the validation slice first)
        slots = self._models.slots
        reason: str | None = None
        for name, slot in slots.items():
            if slot.model is None:
                reason = reason or "error"
                continue
            if not slot.breaker.allow():
                reason = reason or "circuit_open"
                continue
            p99 = slot.latency.p99()
            if p99 is not None and p99 > deadline.remaining_ms():
                slot.breaker.release()
                reason = reason or "over_budget"
                continue
            call_started = self._timer()
            slot.last_call = call_started
            try:
                ranking = slot.model.predict(features, now=now, top=top)
                scores = validated_scores(ranking, top, slot.score_range)
            except BatcherUnavailable as exc:
                # the GPU micro-batcher is saturated (over_budget: not the model's fault, the breaker is
                # left alone) or answered late (timeout: an overrun, counted like one)
                stages.append((name, (self._timer() - call_started) * 1000.0))
                if exc.reason == "timeout":
                    self._failed(slot, "overrun")
                else:
                    slot.breaker.release()
                reason = reason or exc.reason
                continue
            except Exception as exc:
                took = (self._timer() - call_started) * 1000.0
                stages.append((name, took))
                kind = "invalid_output" if isinstance(exc, InvalidOutput) else "exception"
                self._failed(slot, kind)
                logger.warning("inference.model_failed %s %s: %r", name, slot.version, exc)
                reason = reason or "error"
                continue
            took = (self._timer() - call_started) * 1000.0
            stages.append((name, took))
            slot.latency.record(took)
            metrics.PREDICT_SECONDS.labels(name, "model").observe(took / 1000.0)
            if deadline.remaining_ms() < 0:
                # answered too late: discard it (the cheaper next step answers), count an overrun
                self._failed(slot, "overrun")
                reason = reason or "timeout"
                continue
            slot.breaker.record_success()
            metrics.BREAKER_STATE.labels(name).set(0)
            if reason is None and self._learned_missing_before(name, slots):
                reason = "no_model"
            answer = self._answer(
                scores, name, slot.version, reason, deadline, stages, ranking=ranking, features=features
            )
            shadow = self._shadow.current  # read once; None (no shadow) costs one attribute read
            if shadow is not None:
                self._shadow.score(shadow, features, answer, now=now, deadline=deadline)
            return answer
        return self._prior_answer(
            features, reason or "no_model", now=now, top=top, deadline=deadline, stages=stages
        )

    def _learned_missing_before(self, served: str, slots: dict[str, LoadedModel]) -> bool:
        """A learned model named before ``served`` in the chain has no active version (``no_model``)."""
        for name in self.config.chain:
            if name == served:
                return False
            if name in LEARNED and name not in slots:
                return True
        return False

    def _preferred(self) -> tuple[str, str] | None:
        """(model, version) the chain tries first now: the first step of the serving order with a loaded model."""
        for name, slot in self._models.slots.items():
            if slot.model is not None:
                return name, slot.version
        return None

    def answer_refresh(self, user_id: str, *, deadline: Deadline) -> Interests | None:
        """The write side of stored answers (a worker's task, never a visitor's request): clear the user's
        recompute flag, predict live through the chain, store the answer with the feature version read
        after the flag was cleared if the preferred model gave it. Returns the answer stored (None: none).
        Raises ``FeatureStoreUnavailable``."""
        answers = self._answers
        if answers is None:
            return None
        version = answers.store.answer_claim(user_id)
        now = self._clock()
        _recomputing.active = True
        try:
            answer = self.predict(user_id, deadline=deadline, top=answers.top, now=now)
        finally:
            _recomputing.active = False
        if version == 0 or (answer.served_by, answer.model_version) != self._preferred():
            return None
        answers.write(user_id, answer, version=version, computed_at=now)
        return answer

    @property
    def answers(self) -> StoredAnswers | None:
        return self._answers

    def _failed(self, slot: LoadedModel, kind: str) -> None:
        slot.breaker.record_failure()
        metrics.MODEL_ERRORS_TOTAL.labels(slot.name, kind).inc()
        metrics.BREAKER_STATE.labels(slot.name).set(STATE_VALUE[slot.breaker.state])

    def _prior_answer(
        self,
        features: Any | None,
        reason: str,
        *,
        now: float,
        top: int,
        deadline: Deadline,
        stages: list[tuple[str, float]],
    ) -> Interests:
        started = self._timer()
        ranking: Any = ()
        try:
            ranking = self._prior.predict(features, now=now, top=top)
            scores = validated_scores(ranking, top, (0.0, math.inf))
        except Exception:  # the last resort must still answer: an empty list, said to be an error
            logger.exception("inference.prior_failed")
            scores, reason = (), "error"
        took = (self._timer() - started) * 1000.0
        stages.append(("prior", took))
        metrics.PREDICT_SECONDS.labels("prior", "model").observe(took / 1000.0)
        return self._answer(
            scores, "prior", getattr(self._prior, "version", "prior"), reason, deadline, stages,
            ranking=ranking, features=features,
        )

    def _answer(
        self,
        scores: tuple[tuple[str, float], ...],
        served_by: str,
        version: str,
        reason: str | None,
        deadline: Deadline,
        stages: list[tuple[str, float]],
        *,
        ranking: Any = (),
        features: Any = None,
    ) -> Interests:
        elapsed = deadline.elapsed_ms()
        # the calibrated probabilities the model's ranking carries (``inference.models.base.Ranking``),
        # kept only when there is one per score served
        probabilities = getattr(ranking, "probabilities", ())
        if len(probabilities) < len(scores):
            probabilities = ()
        user = getattr(features, "user", None)
        if getattr(_recomputing, "active", False):
            metrics.ANSWERS_RECOMPUTED_TOTAL.labels(served_by).inc()
        else:
            metrics.SERVED_TOTAL.labels(served_by).inc()
            if reason is not None:
                metrics.FALLBACKS_TOTAL.labels(reason).inc()
            metrics.PREDICT_SECONDS.labels(served_by, "total").observe(elapsed / 1000.0)
        return Interests(
            scores=scores,
            served_by=served_by,
            model_version=version,
            fallback_reason=reason,
            elapsed_ms=elapsed,
            stage_ms=tuple(stages),
            probabilities=tuple(probabilities[: len(scores)]),
            history_events=int(getattr(user, "events", 0) or 0),
        )
