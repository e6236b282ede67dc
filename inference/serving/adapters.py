"""Adapters from the real parts to the predictor's ports.

- :class:`StoreAdapter` reads a user's state and the population state from the online feature
  store in one round trip and keeps the last population it saw (the prior still answers with the
  population when the store goes down), and the popularity saved with the latest loaded model (what
  the prior answers with when the store has been down since this process started).
- :class:`ModelAdapter` / :class:`ModelLoaderAdapter` turn an ``inference.models`` model (its
  ``predict(user, population, *, now, top)``) into the predictor's ``predict(features, *, now, top)``.
- :class:`PriorAdapter` is the last step of the chain: ``PriorModel`` built from the population
  (rebuilt every few seconds, as the population changes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ServingFeatures:
    # the store's read-out (features helper); the models accept it in ``predict``
    user: Any  # None: no history (cold)
    population: Any


# (user_id, now) -> (user features or None when cold, population features at now), one round trip
StateReader = Callable[..., tuple[Any, Any]]


class StoreAdapter:
    def __init__(self, reader: StateReader) -> None:
        self._reader = reader
        self.last_population: Any = None
        self.saved_population: Any = None  # from a loaded model's saved popularity (``model_loaded``)
        self.prior_calibration: Any = None  # the loaded version's calibration of the prior (``model_loaded``)

    @classmethod
    def from_settings(cls) -> StoreAdapter:
        from inference.store import serving_state_reader  # the features helper's store (configured backend)

        return cls(serving_state_reader())

    def read(self, user_id: str, *, now: float | None = None) -> ServingFeatures:
        # the features at the predictor's `now`: the models rank from the read-out's own time, so a
        # store read at another clock than the predictor's would date every feature differently
        user, population = self._reader(user_id, now)  # the store already reads a cold user as None
        if population is not None and getattr(population, "counts", None):
            self.last_population = population
        return ServingFeatures(user, population)

    def is_cold(self, features: ServingFeatures) -> bool:
        return features.user is None

    def known_population(self) -> Any:
        """The last population the store reported, else the popularity saved with a loaded model."""
        return self.last_population if self.last_population is not None else self.saved_population

    def empty(self) -> ServingFeatures:
        return ServingFeatures(None, self.known_population())

    def model_loaded(self, model: Any) -> None:
        """Remember a loaded model's saved popularity (the ``ModelLoaderAdapter``'s ``on_loaded``)."""
        from inference.models.inputs import population_from_counts

        popularity = getattr(model, "popularity", None)
        if popularity and any(popularity.values()):
            self.saved_population = population_from_counts(popularity)
        line = (getattr(model, "training", None) or {}).get("prior_calibration")
        if line:  # the prior's calibration fitted with this version (``inference.models.model_train``)
            from inference.models.calibration import Calibration

            try:
                self.prior_calibration = Calibration.from_dict(line)
            except (KeyError, TypeError, ValueError):
                pass  # a malformed entry: the prior keeps its horizon-share reading


class ModelAdapter:
    score_range = (0.0, 1.0)  # the models answer a logistic of their score

    def __init__(self, model: Any) -> None:
        self.model = model
        self.algorithm = model.algorithm

    def predict(self, features: ServingFeatures, *, now: float, top: int) -> list[tuple[str, float]]:
        return self.model.predict(features.user, features.population, now=now, top=top)


class ModelLoaderAdapter:
    """Loads a version from its artifact directory; ``fastpath`` (keyword arguments of
    ``fastpath.accelerate``) gives the serving copy its fast scoring path, ``None`` keeps the model's own."""

    def __init__(
        self, *, fastpath: dict[str, Any] | None = None, on_loaded: Callable[[Any], None] | None = None
    ) -> None:
        self.fastpath = fastpath
        self.on_loaded = on_loaded  # called with each loaded model (e.g. ``StoreAdapter.model_loaded``)

    def __call__(self, algorithm: str, directory: Path) -> ModelAdapter:
        from inference.models import model_load

        model = model_load(Path(directory))
        if model.algorithm != algorithm:
            raise ValueError(f"{directory} holds a {model.algorithm} model, not {algorithm}")
        if self.fastpath is not None:
            from inference.serving.fastpath import accelerate

            model = accelerate(model, **self.fastpath)
        if self.on_loaded is not None:
            self.on_loaded(model)
        return ModelAdapter(model)


class PriorAdapter:
    """Population popularity blended with the user's decayed counts (population only without a user)."""

    version = "prior"

    def __init__(self, store: StoreAdapter, *, rebuild_seconds: float = 30.0) -> None:
        self._store = store
        self._rebuild_seconds = rebuild_seconds
        self._prior: Any = None
        self._built_at = 0.0
        self._built_from: Any = None
        self._lock = threading.Lock()

    def _current(self, population: Any) -> Any:
        from inference.models.prior import PriorModel

        stale = time.monotonic() - self._built_at >= self._rebuild_seconds
        # a category the prior has never seen (a young site's population grows) cannot be ranked: rebuild at once
        grown = (
            self._prior is not None
            and population is not None
            and len(population.counts) > len(self._prior.categories)
        )
        line = getattr(self._store, "prior_calibration", None)
        recalibrated = self._prior is not None and line is not self._prior.calibration and line is not None
        if (
            self._prior is None or grown or recalibrated
            or (stale and population is not None and population is not self._built_from)
        ):
            with self._lock:
                counts = dict(population.counts) if population is not None else {}
                events = float(getattr(population, "events", 0.0) or 0.0)
                # categories per interest event: what the probabilities read a share as (``calibration``)
                per_event = float(getattr(population, "total", 0.0) or 0.0) / events if events > 0 else 1.0
                self._prior = PriorModel.from_population(counts, per_event=per_event, calibration=line)
                self._built_at, self._built_from = time.monotonic(), population
        return self._prior

    def predict(
        self, features: ServingFeatures | None, *, now: float, top: int
    ) -> Sequence[tuple[str, float]]:
        population = features.population if features is not None else None
        population = (
            population if population is not None and population.counts else self._store.known_population()
        )
        if population is None or not population.counts:
            return []
        user = features.user if features is not None else None
        return self._current(population).predict(user, population, now=now, top=top)
