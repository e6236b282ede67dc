"""The per-process predictor: loads the active model versions, hot-swaps new ones, answers in time.

Promises:

- Start-up loads every active version and warms it up with a dummy prediction before serving it.
- A background thread polls the registry (every ``INFERENCE["RELOAD_POLL_SECONDS"]``); a newly
  activated version is loaded and warmed up *first*, then swapped in by replacing one reference, so
  a request sees either the old set of models or the new one, never a half-loaded model. A version
  that fails to load leaves the previous one serving.
- ``predict`` never raises: it tries neural, then gbdt, then the prior. A model is tried only if its
  circuit breaker allows it and its recent p99 fits in the time left; an exception, a NaN or
  out-of-range score, or an overrun of the deadline falls through to the next. The prior always
  answers (population popularity blended with the user's own decayed counts, or the population only
  when the feature store cannot be read).
- One thread of math per process (``torch.set_num_threads(1)``): a 2-core host runs several workers.
- Shadow mode: the same poll reads the shadow config; the shadow version is loaded and warmed up
  beside the serving ones but never serves. After a model (neural or gbdt) has answered, a sampled
  request is also scored by the shadow, only if its p99 fits in the time the deadline has left and
  its own breaker allows it; its top-k overlap with the served answer and its latency go to the
  ``inference_shadow_*`` metrics. The served answer is computed first and returned unchanged; a shadow
  failure is counted (``inference_shadow_errors_total``), never raised, and opens its breaker; a
  shadow skipped for its p99 is timed again by ``probe_idle`` like the serving models.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from inference.serving import metrics
from inference.serving.batcher import BatcherUnavailable
from inference.serving.breaker import STATE_VALUE, CircuitBreaker
from inference.serving.deadline import Deadline
from inference.serving.interests import Interests
from inference.serving.latency import LatencyWindow

logger = logging.getLogger(__name__)

CHAIN = ("neural", "gbdt")


class ServingModel(Protocol):
    def predict(self, features: Any, *, now: float, top: int) -> Sequence[tuple[str, float]]: ...


class FeatureAccess(Protocol):
    """The online feature store as serving sees it (one round trip per user)."""

    def read(self, user_id: str) -> Any:
        """The user's features; raises when the store is unavailable."""
        ...

    def is_cold(self, features: Any) -> bool: ...

    def empty(self) -> Any:
        """Features of a user with no history (used for the warm-up)."""
        ...


class PriorScorer(Protocol):
    version: str

    def predict(self, features: Any | None, *, now: float, top: int) -> Sequence[tuple[str, float]]:
        """Population popularity blended with the user's decayed counts; population only for None."""
        ...


class ActiveVersionLike(Protocol):
    version: str
    artifact_dir: Path


class ShadowVersionLike(Protocol):
    @property
    def algorithm(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def artifact_dir(self) -> Path: ...
    @property
    def sample_rate(self) -> float: ...
    @property
    def top_k(self) -> int: ...


ModelLoader = Callable[[str, Path], ServingModel]
RegistryReader = Callable[[], Mapping[str, ActiveVersionLike]]
ShadowReader = Callable[[], ShadowVersionLike | None]


@dataclass(eq=False)
class LoadedModel:
    """One version of one algorithm as this process holds it (model None: it failed to load)."""

    name: str
    version: str
    model: ServingModel | None
    breaker: CircuitBreaker
    latency: LatencyWindow
    error: str = ""
    last_call: float = 0.0  # time.monotonic() of the last request that called it
    score_range: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True, eq=False)
class ShadowSlot:
    """The shadow as this process holds it: a loaded, warmed-up model and how much traffic it sees."""

    slot: LoadedModel
    sample_rate: float
    top_k: int


def topk_overlap(served: Sequence[tuple[str, float]], shadow: Sequence[tuple[str, float]], k: int) -> float:
    """Share of the served answer's top-k categories that the shadow's top-k also holds (1.0: the
    same set, in any order). k is capped by the served answer's length; an empty answer agrees fully."""
    k = min(k, len(served))
    if k <= 0:
        return 1.0
    wanted = {category for category, _ in served[:k]}
    return len(wanted.intersection(category for category, _ in shadow[:k])) / k


@dataclass(frozen=True)
class PredictorConfig:
    failure_threshold: int = 5
    cooldown_s: float = 5.0
    latency_window: int = 256
    latency_max_age_s: float = 1.0
    poll_seconds: float = 2.0
    # how often the poll thread times the models no request called meanwhile (capped by poll_seconds)
    probe_seconds: float = 0.5
    chain: tuple[str, ...] = CHAIN
    warm_up_calls: int = 2


class InvalidOutput(ValueError):
    """A model answered with NaN, infinity, an out-of-range score or a malformed pair."""


def _validated(
    raw: Sequence[tuple[str, float]], top: int, score_range: tuple[float, float]
) -> tuple[tuple[str, float], ...]:
    low, high = score_range
    out: list[tuple[str, float]] = []
    for category, score in raw[:top]:
        value = float(score)
        if not math.isfinite(value) or value < low or value > high:
            raise InvalidOutput(f"score {value!r} for {category!r} outside [{low}, {high}]")
        out.append((str(category), value))
    return tuple(out)


def _single_thread_math() -> None:
    try:
        import torch
    except ImportError:  # the CPU path of gbdt and the prior needs no torch
        return
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable once per process, before any parallel work
        pass


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
    ) -> None:
        self.config = config or PredictorConfig()
        # run by the polling thread as it ends (the wiring closes the thread's database connection)
        self._poll_thread_exit = poll_thread_exit
        self._features = features
        self._prior = prior
        self._loader = loader
        self._registry_reader = registry_reader
        self._clock = clock
        # the one reference requests read; replaced whole, never mutated in place
        self._slots: dict[str, LoadedModel] = {}
        self._refresh_lock = threading.Lock()
        self._failed_versions: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_refresh_error: str = ""
        # shadow mode (None: no shadow); replaced whole like _slots, read once per request
        self._shadow_reader = shadow_reader
        self._sampler = sampler
        self._shadow: ShadowSlot | None = None
        self._failed_shadow = ""
        self.shadow_error = ""

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self, *, background: bool = True) -> Predictor:
        """Load the active versions now; then (optionally) keep polling the registry in a thread."""
        _single_thread_math()
        try:
            self.refresh()
        except Exception as exc:  # the registry unreadable at start-up: serve the prior, keep polling
            self.last_refresh_error = repr(exc)
            logger.exception("inference.registry_poll_failed")
        if background and self.config.poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._poll_loop, name="inference-model-poll", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _probe_period(self) -> float:
        """Seconds between the poll thread's probes: ``probe_seconds``, at most ``poll_seconds``."""
        probe, poll = self.config.probe_seconds, self.config.poll_seconds
        return min(probe, poll) if probe > 0 else poll

    def _poll_loop(self) -> None:
        next_refresh = time.monotonic() + self.config.poll_seconds
        while not self._stop.wait(self._probe_period()):
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + self.config.poll_seconds
                try:
                    self.refresh()
                    self.last_refresh_error = ""
                except Exception as exc:
                    self.last_refresh_error = repr(exc)
                    logger.warning("inference.registry_poll_failed: %r", exc)
            self.probe_idle()
        if self._poll_thread_exit is not None:
            try:
                self._poll_thread_exit()
            except Exception:
                logger.exception("inference.poll_thread_exit_failed")

    def probe_idle(self) -> list[str]:
        """Time one call (on empty features) of each loaded model that no request called during the
        last probe period, so that a model skipped for its p99 comes back soon after it is fast again
        and stays out, without any request paying for it, while it is slow. Returns the models probed."""
        probed = []
        idle_since = time.monotonic() - max(self._probe_period(), 0.0)
        slots = list(self._slots.items())
        shadow = self._shadow
        if shadow is not None:  # a shadow skipped for its p99 after one slow call recovers the same way
            slots.append((f"shadow:{shadow.slot.version}", shadow.slot))
        for name, slot in slots:
            if slot.model is None or slot.last_call > idle_since or slot.breaker.state != "closed":
                continue
            started = time.perf_counter()
            try:
                _validated(
                    slot.model.predict(self._features.empty(), now=self._clock(), top=5), 5, slot.score_range
                )
            except Exception as exc:  # a probe is not a request: the breaker learns from requests only
                logger.debug("inference.probe_failed %s: %r", name, exc)
                continue
            slot.latency.record((time.perf_counter() - started) * 1000.0)
            slot.last_call = time.monotonic()
            probed.append(name)
        return probed

    def loaded(self) -> dict[str, str]:
        """algorithm -> version for the models this process serves now (failed loads excluded)."""
        return {name: slot.version for name, slot in self._slots.items() if slot.model is not None}

    def load_errors(self) -> dict[str, str]:
        return {name: slot.error for name, slot in self._slots.items() if slot.model is None}

    def breaker_states(self) -> dict[str, str]:
        return {name: slot.breaker.state for name, slot in self._slots.items()}

    def shadow_status(self) -> dict[str, str]:
        """The shadow this process holds: version, sample rate, top-k, breaker (empty: none) and the
        last load error."""
        shadow = self._shadow
        out: dict[str, str] = {"error": self.shadow_error} if self.shadow_error else {}
        if shadow is not None:
            out.update(
                version=shadow.slot.version,
                algorithm=shadow.slot.name,
                sample_rate=str(shadow.sample_rate),
                top_k=str(shadow.top_k),
                breaker=shadow.slot.breaker.state,
            )
        return out

    def refresh(self) -> bool:
        """Poll the registry once; load changed versions fully, then swap them in. True if swapped."""
        with self._refresh_lock:
            active = self._registry_reader()
            current = self._slots
            updated = dict(current)
            for name in self.config.chain:
                wanted = active.get(name)
                held = current.get(name)
                if wanted is None:
                    if held is not None:
                        del updated[name]
                    continue
                if held is not None and held.version == wanted.version:
                    continue
                if self._failed_versions.get(name) == wanted.version:
                    continue  # already failed to load: do not retry every poll
                slot = self._load(name, wanted.version, Path(wanted.artifact_dir))
                if slot.model is None:
                    self._failed_versions[name] = wanted.version
                    if held is not None and held.model is not None:
                        logger.error(
                            "inference.model_load_failed_keeping_previous %s %s", wanted.version, slot.error
                        )
                        continue
                updated[name] = slot
            shadow_changed = self._refresh_shadow(served={slot.version for slot in updated.values()})
            if updated == current:
                return shadow_changed
            self._slots = updated  # the atomic swap
            self._publish_versions(current, updated)
            return True

    def _refresh_shadow(self, *, served: set[str]) -> bool:
        """Load (and warm up) the configured shadow version, or drop it; True when it changed. A
        failure to read the config keeps the current shadow; a failure to load leaves none."""
        if self._shadow_reader is None:
            return False
        try:
            wanted = self._shadow_reader()
        except Exception as exc:
            logger.warning("inference.shadow_poll_failed: %r", exc)
            return False
        held = self._shadow
        if wanted is None or wanted.version in served:
            # no shadow, or it has become a serving version: nothing left to compare it with
            self._set_shadow(None)
            self.shadow_error = ""
            return held is not None
        if held is not None and held.slot.version == wanted.version:
            if (held.sample_rate, held.top_k) == (wanted.sample_rate, wanted.top_k):
                return False
            self._shadow = ShadowSlot(held.slot, float(wanted.sample_rate), int(wanted.top_k))
            return True
        if self._failed_shadow == wanted.version:
            return False  # already failed to load: do not retry every poll
        slot = self._load(wanted.algorithm, wanted.version, Path(wanted.artifact_dir))
        if slot.model is None:
            self._failed_shadow, self.shadow_error = wanted.version, slot.error
            self._set_shadow(None)
            return held is not None
        self.shadow_error = ""
        self._set_shadow(ShadowSlot(slot, float(wanted.sample_rate), int(wanted.top_k)))
        logger.info("inference.shadow_loaded %s at %.3f", wanted.version, wanted.sample_rate)
        return True

    def _set_shadow(self, new: ShadowSlot | None) -> None:
        old, self._shadow = self._shadow, new  # one reference: a request sees the old or the new
        if old is not None and (new is None or new.slot is not old.slot):
            metrics.SHADOW_LOADED.labels(old.slot.version).set(0)
        if new is not None:
            metrics.SHADOW_LOADED.labels(new.slot.version).set(1)

    def _load(self, name: str, version: str, artifact_dir: Path) -> LoadedModel:
        slot = LoadedModel(
            name=name,
            version=version,
            model=None,
            breaker=CircuitBreaker(
                failure_threshold=self.config.failure_threshold, cooldown_s=self.config.cooldown_s
            ),
            latency=LatencyWindow(self.config.latency_window, max_age_s=self.config.latency_max_age_s),
        )
        try:
            model = self._loader(name, artifact_dir)
            score_range = tuple(getattr(model, "score_range", (0.0, 1.0)))
            slot.score_range = (float(score_range[0]), float(score_range[1]))
            empty = self._features.empty()
            for call in range(max(1, self.config.warm_up_calls)):
                started = time.perf_counter()
                _validated(model.predict(empty, now=self._clock(), top=5), 5, slot.score_range)
                if call > 0:  # the first call pays one-off costs; the rest seed the latency window
                    slot.latency.record((time.perf_counter() - started) * 1000.0)
            slot.model = model
            metrics.MODEL_LOADS_TOTAL.labels(name, "ok").inc()
            logger.info("inference.model_loaded %s %s", name, version)
        except Exception as exc:
            slot.error = f"{type(exc).__name__}: {exc}"
            metrics.MODEL_LOADS_TOTAL.labels(name, "error").inc()
            logger.error("inference.model_load_failed %s %s: %s", name, version, slot.error)
        return slot

    def _publish_versions(self, before: Mapping[str, LoadedModel], after: Mapping[str, LoadedModel]) -> None:
        for name, slot in before.items():
            if after.get(name) is not slot:
                metrics.MODEL_VERSION_LOADED.labels(name, slot.version).set(0)
        for name, slot in after.items():
            metrics.MODEL_VERSION_LOADED.labels(name, slot.version).set(1 if slot.model is not None else 0)
            metrics.BREAKER_STATE.labels(name).set(STATE_VALUE[slot.breaker.state])

    # --- answering --------------------------------------------------------------------------------
    def predict(self, user_id: str, *, deadline: Deadline, top: int = 10) -> Interests:
        stages: list[tuple[str, float]] = []
        now = self._clock()
        started = time.perf_counter()
        try:
            features = self._features.read(user_id)
        except Exception as exc:  # store down: degrade to the population prior, never crash
            logger.warning("inference.feature_store_unavailable: %r", exc)
            stages.append(("features", (time.perf_counter() - started) * 1000.0))
            return self._prior_answer(None, "error", now=now, top=top, deadline=deadline, stages=stages)
        features_ms = (time.perf_counter() - started) * 1000.0
        stages.append(("features", features_ms))
        metrics.PREDICT_SECONDS.labels("all", "features").observe(features_ms / 1000.0)
        if self._features.is_cold(features):
            return self._prior_answer(
                features, "cold_start", now=now, top=top, deadline=deadline, stages=stages
            )

        slots = self._slots  # read the reference once: this request uses one consistent set
        reason: str | None = None
        for name in self.config.chain:
            slot = slots.get(name)
            if slot is None:
                reason = reason or "no_model"
                continue
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
            call_started = time.perf_counter()
            slot.last_call = time.monotonic()
            try:
                scores = _validated(slot.model.predict(features, now=now, top=top), top, slot.score_range)
            except BatcherUnavailable as exc:
                # the GPU micro-batcher is saturated (over_budget: not the model's fault, the breaker is
                # left alone) or answered late (timeout: an overrun, counted like one)
                stages.append((name, (time.perf_counter() - call_started) * 1000.0))
                if exc.reason == "timeout":
                    self._failed(slot, "overrun")
                else:
                    slot.breaker.release()
                reason = reason or exc.reason
                continue
            except Exception as exc:
                took = (time.perf_counter() - call_started) * 1000.0
                stages.append((name, took))
                kind = "invalid_output" if isinstance(exc, InvalidOutput) else "exception"
                self._failed(slot, kind)
                logger.warning("inference.model_failed %s %s: %r", name, slot.version, exc)
                reason = reason or "error"
                continue
            took = (time.perf_counter() - call_started) * 1000.0
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
            answer = self._answer(scores, name, slot.version, reason, deadline, stages)
            shadow = self._shadow  # read once; None (no shadow) costs one attribute read
            if shadow is not None:
                self._shadow_score(shadow, features, answer, now=now, deadline=deadline)
            return answer
        return self._prior_answer(
            features, reason or "no_model", now=now, top=top, deadline=deadline, stages=stages
        )

    def _shadow_score(
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
            started = time.perf_counter()
            slot.last_call = time.monotonic()
            try:
                scores = _validated(slot.model.predict(features, now=now, top=k), k, slot.score_range)
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
            took = (time.perf_counter() - started) * 1000.0
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
        started = time.perf_counter()
        try:
            scores = _validated(self._prior.predict(features, now=now, top=top), top, (0.0, math.inf))
        except Exception:  # the last resort must still answer: an empty list, said to be an error
            logger.exception("inference.prior_failed")
            scores, reason = (), "error"
        took = (time.perf_counter() - started) * 1000.0
        stages.append(("prior", took))
        metrics.PREDICT_SECONDS.labels("prior", "model").observe(took / 1000.0)
        return self._answer(
            scores, "prior", getattr(self._prior, "version", "prior"), reason, deadline, stages
        )

    def _answer(
        self,
        scores: tuple[tuple[str, float], ...],
        served_by: str,
        version: str,
        reason: str | None,
        deadline: Deadline,
        stages: list[tuple[str, float]],
    ) -> Interests:
        elapsed = deadline.elapsed_ms()
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
        )
