"""The one predictor of this process: created on first use (after a fork, so each gunicorn worker
builds its own and its own polling thread: ``inference.process_local.PerProcess``), replaceable for
tests and for the wiring of other setups.
"""

from __future__ import annotations

from collections.abc import Callable

from inference.process_local import PerProcess
from inference.serving.predictor import Predictor


def _default_factory() -> Predictor:
    from inference.serving.wiring import predictor_build

    return predictor_build()


_predictor: PerProcess[Predictor] = PerProcess(lambda: _default_factory().start())


def predictor() -> Predictor:
    """This process's started predictor (built and warmed up on the first call)."""
    return _predictor.get()


def predictor_loaded() -> Predictor | None:
    """The predictor if this process has built one (never builds: for probes)."""
    return _predictor.peek()


def predictor_install(new: Predictor | None, *, factory: Callable[[], Predictor] | None = None) -> None:
    """Replace this process's predictor (stopping the old one); ``None`` rebuilds on next use (with
    ``factory``, when given, from now on)."""
    old = _predictor.install(new, build=(lambda: factory().start()) if factory is not None else None)
    if old is not None and old is not new:
        old.stop()
