"""The per-request deadline: created once at the edge, passed down, asked how much time is left."""

from __future__ import annotations

import time
from collections.abc import Callable

from inference.conf import inference_setting


class Deadline:
    """A point in time (monotonic clock, ``time.perf_counter`` unless a test passes its own) by which
    an answer is due."""

    __slots__ = ("_started", "_due", "_clock", "budget_ms")

    def __init__(self, budget_ms: float, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.budget_ms = float(budget_ms)
        self._clock = clock
        self._started = clock()
        self._due = self._started + self.budget_ms / 1000.0

    @classmethod
    def from_settings(cls) -> Deadline:
        """A deadline of ``INFERENCE["BUDGET_MS"]`` (default 5 ms) starting now."""
        return cls(float(inference_setting("BUDGET_MS")))

    def remaining_ms(self) -> float:
        """Milliseconds left (negative once overrun)."""
        return (self._due - self._clock()) * 1000.0

    def elapsed_ms(self) -> float:
        return (self._clock() - self._started) * 1000.0

    def expired(self) -> bool:
        return self._clock() >= self._due

    def __repr__(self) -> str:
        return f"Deadline(budget_ms={self.budget_ms}, remaining_ms={self.remaining_ms():.3f})"
