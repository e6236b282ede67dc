"""A model made slow on purpose, for the benchmarks that show the chain answering in budget when the
neural model cannot: a loader wrapper (``SlowedLoader``) the benchmark injects into its own predictor,
and ``post_worker_init`` for a gunicorn server whose workers build theirs with it
(``benchmarks/gunicorn_slowed.conf.py``). The site's own serving path has no such hook."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


class _Slowed:
    def __init__(self, model: Any, delay_s: float) -> None:
        self.model = model
        self.delay_s = delay_s
        self.score_range = getattr(model, "score_range", (0.0, 1.0))

    def predict(self, features: Any, *, now: float, top: int) -> Sequence[tuple[str, float]]:
        time.sleep(self.delay_s)
        result: Sequence[tuple[str, float]] = self.model.predict(features, now=now, top=top)
        return result


class SlowedLoader:
    """``loader(algorithm, directory)`` whose models named in ``delay_ms`` sleep that long per call."""

    def __init__(self, loader: Callable[[str, Path], Any], delay_ms: Mapping[str, float]) -> None:
        self.loader = loader
        self.delay_ms = dict(delay_ms)

    def __call__(self, algorithm: str, directory: Path) -> Any:
        model = self.loader(algorithm, directory)
        delay = self.delay_ms.get(algorithm, 0.0)
        return _Slowed(model, delay / 1000.0) if delay > 0 else model


def predictor_slowed_install() -> None:
    """This process's predictor built by the site's wiring with the neural model slowed by
    ``BENCH_NEURAL_DELAY_MS`` (a gunicorn worker of the benchmark's server)."""
    from inference.serving.runtime import predictor_install
    from inference.serving.wiring import predictor_build

    delay = float(os.environ.get("BENCH_NEURAL_DELAY_MS", "0") or 0)
    predictor_install(
        None, factory=lambda: predictor_build(loader_wrap=lambda loader: SlowedLoader(loader, {"neural": delay}))
    )
