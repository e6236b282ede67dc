"""``PerProcess``: one value per process, built on first use, the process's own after a fork.

The site's per-process singletons (the composition root ``adsite.platform``, the predictor of
``inference.serving.runtime``) are built lazily and must never be shared with a forked child: a
gunicorn worker forked from a master that had built one builds its own (its own Redis clients, its own
polling thread). Tests and the simulation install a replacement whole.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["PerProcess"]


class PerProcess(Generic[T]):
    """This process's ``T``: ``get()`` builds it with ``build`` on first use (and again in a forked
    child); ``install(value)`` replaces it (None: build again on next use)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pid: int | None = None

    def get(self) -> T:
        value = self._value
        if value is not None and self._pid == os.getpid():  # the hot path: no lock
            return value
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                self._value, self._pid = self._build(), os.getpid()
            return self._value

    def peek(self) -> T | None:
        """The value if this process has one (never builds)."""
        return self._value if self._pid == os.getpid() else None

    def install(self, value: T | None, *, build: Callable[[], T] | None = None) -> T | None:
        """Make ``value`` this process's (None: build on next use, with ``build`` when given from now
        on); returns the one it replaces."""
        with self._lock:
            previous = self._value
            self._value, self._pid = value, (os.getpid() if value is not None else None)
            if build is not None:
                self._build = build
        return previous
