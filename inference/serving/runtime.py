"""The one predictor of this process: created on first use (after a fork, so each gunicorn worker
builds its own and its own polling thread), replaceable for tests and for the wiring of other setups.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from inference.serving.predictor import Predictor

_lock = threading.Lock()
_predictor: Predictor | None = None
_pid: int | None = None
_factory: Callable[[], Predictor] | None = None


def _default_factory() -> Predictor:
    from inference.serving.wiring import predictor_build

    return predictor_build()


def predictor() -> Predictor:
    """This process's started predictor (built and warmed up on the first call)."""
    global _predictor, _pid
    current = _predictor
    if current is not None and _pid == os.getpid():
        return current
    with _lock:
        if _predictor is None or _pid != os.getpid():
            _predictor = (_factory or _default_factory)().start()
            _pid = os.getpid()
        return _predictor


def predictor_loaded() -> Predictor | None:
    """The predictor if this process has built one (never builds: for probes)."""
    return _predictor if _pid == os.getpid() else None


def predictor_install(new: Predictor | None, *, factory: Callable[[], Predictor] | None = None) -> None:
    """Replace this process's predictor (stopping the old one); ``None`` rebuilds on next use."""
    global _predictor, _pid, _factory
    with _lock:
        old = _predictor
        _predictor, _pid = new, (os.getpid() if new is not None else None)
        if factory is not None:
            _factory = factory
    if old is not None and old is not new:
        old.stop()
