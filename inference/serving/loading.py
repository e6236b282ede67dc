"""Loading model versions and swapping them in whole.

``ModelSet`` holds the one reference requests read (``slots``: algorithm -> ``LoadedModel``, in the
order the chain tries them: best validation score first, ``slots.serving_order``). A newly
activated version is loaded and warmed up *first*, then swapped in by replacing that reference, so a
request sees either the old set of models or the new one, never a half-loaded model. A version that
fails to load leaves the previous one serving and is not retried on every poll; until the registry
names a version this process holds again, ``load_errors`` reports it (so ``/readyz`` says the process
serves an older version than the registry's), beside the versions that failed with nothing to keep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from inference.serving import metrics
from inference.serving.breaker import STATE_VALUE, CircuitBreaker
from inference.serving.latency import LatencyWindow
from inference.serving.slots import (
    FeatureAccess,
    LoadedModel,
    ModelLoader,
    PredictorConfig,
    RegistryReader,
    serving_order,
    validated_scores,
)

logger = logging.getLogger(__name__)


def single_thread_math() -> None:
    """One thread of math per process (``torch.set_num_threads(1)``): a 2-core host runs several workers."""
    try:
        import torch
    except ImportError:  # the CPU path of gbdt and the prior needs no torch
        return
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable once per process, before any parallel work
        pass


class ModelSet:
    """The serving versions of the chain's algorithms, as this process holds them."""

    def __init__(
        self,
        *,
        features: FeatureAccess,
        loader: ModelLoader,
        registry_reader: RegistryReader,
        config: PredictorConfig,
        clock: Callable[[], float],
        timer: Callable[[], float],
    ) -> None:
        self._features = features
        self._loader = loader
        self._registry_reader = registry_reader
        self._config = config
        self._clock = clock
        self._timer = timer
        # the one reference requests read; replaced whole, never mutated in place
        self.slots: dict[str, LoadedModel] = {}
        # algorithm -> (version, error) of the registry's version that failed to load here
        self._failed_versions: dict[str, tuple[str, str]] = {}

    def loaded(self) -> dict[str, str]:
        """algorithm -> version for the models this process serves now (failed loads excluded)."""
        return {name: slot.version for name, slot in self.slots.items() if slot.model is not None}

    def load_errors(self) -> dict[str, str]:
        """algorithm -> why the registry's version of it is not served here: a failed load with nothing to
        fall back on, or a newer version that failed while the previous one serves on."""
        errors = {name: slot.error for name, slot in self.slots.items() if slot.model is None}
        for name, (version, error) in self._failed_versions.items():
            held = self.slots.get(name)
            if name not in errors and held is not None and held.version != version:
                errors[name] = f"{version} failed to load ({error}); serving {held.version}"
        return errors

    def breaker_states(self) -> dict[str, str]:
        return {name: slot.breaker.state for name, slot in self.slots.items()}

    def versions(self) -> set[str]:
        """Every version held, loaded or failed."""
        return {slot.version for slot in self.slots.values()}

    def refresh(self) -> bool:
        """Read the registry once; load changed versions fully, then swap them in. True if swapped.
        The caller serializes refreshes."""
        active = self._registry_reader()
        current = self.slots
        updated = dict(current)
        for name in self._config.chain:
            wanted = active.get(name)
            held = current.get(name)
            if wanted is None:
                self._failed_versions.pop(name, None)
                if held is not None:
                    del updated[name]
                continue
            if held is not None and held.version == wanted.version:
                held.validation_score = wanted.validation_score  # a later run re-scored it
                self._failed_versions.pop(name, None)  # the registry names what is held again
                continue
            if self._failed_versions.get(name, ("", ""))[0] == wanted.version:
                continue  # already failed to load: do not retry every poll
            slot = self.load(name, wanted.version, Path(wanted.artifact_dir))
            if slot.model is None:
                self._failed_versions[name] = (wanted.version, slot.error)
                if held is not None and held.model is not None:
                    logger.error(
                        "inference.model_load_failed_keeping_previous %s %s", wanted.version, slot.error
                    )
                    continue
            else:
                self._failed_versions.pop(name, None)
            slot.validation_score = wanted.validation_score
            updated[name] = slot
        # requests try the slots in the dict's order: best on the validation slice first
        order = serving_order({name: slot.validation_score for name, slot in updated.items()}, self._config.chain)
        updated = {name: updated[name] for name in order}
        if list(updated.items()) == list(current.items()):
            return False
        self.slots = updated  # the atomic swap
        _publish_versions(current, updated)
        return True

    def load(self, name: str, version: str, artifact_dir: Path) -> LoadedModel:
        """Load one version and warm it up (its first calls seed the latency window); a failure is
        kept in the returned slot (``model`` None, ``error`` set), never raised."""
        config = self._config
        slot = LoadedModel(
            name=name,
            version=version,
            model=None,
            breaker=CircuitBreaker(
                failure_threshold=config.failure_threshold, cooldown_s=config.cooldown_s, clock=self._timer
            ),
            latency=LatencyWindow(
                config.latency_window, max_age_s=config.latency_max_age_s, clock=self._timer
            ),
        )
        try:
            model = self._loader(name, artifact_dir)
            score_range = tuple(getattr(model, "score_range", (0.0, 1.0)))
            slot.score_range = (float(score_range[0]), float(score_range[1]))
            empty = self._features.empty()
            for call in range(max(1, config.warm_up_calls)):
                started = self._timer()
                validated_scores(model.predict(empty, now=self._clock(), top=5), 5, slot.score_range)
                if call > 0:  # the first call pays one-off costs; the rest seed the latency window
                    slot.latency.record((self._timer() - started) * 1000.0)
            slot.model = model
            metrics.MODEL_LOADS_TOTAL.labels(name, "ok").inc()
            logger.info("inference.model_loaded %s %s", name, version)
        except Exception as exc:
            slot.error = f"{type(exc).__name__}: {exc}"
            metrics.MODEL_LOADS_TOTAL.labels(name, "error").inc()
            logger.error("inference.model_load_failed %s %s: %s", name, version, slot.error)
        return slot


def _publish_versions(before: Mapping[str, LoadedModel], after: Mapping[str, LoadedModel]) -> None:
    for name, slot in before.items():
        if after.get(name) is not slot:
            metrics.MODEL_VERSION_LOADED.labels(name, slot.version).set(0)
    for name, slot in after.items():
        metrics.MODEL_VERSION_LOADED.labels(name, slot.version).set(1 if slot.model is not None else 0)
        metrics.BREAKER_STATE.labels(name).set(STATE_VALUE[slot.breaker.state])


__all__ = ["ModelSet", "single_thread_math"]
