"""Recent latency per model: a sliding window of the last N calls (and at most the last few seconds)
and its p99.

The p99 is recomputed every few records rather than on every read, because it is read on every
request (to decide whether a model can answer in the time left) and sorting 256 floats per request
would cost more than the decision is worth.

Samples older than ``max_age_s`` are dropped when the p99 is read, except the newest one. A skipped
model records nothing from requests, so a model whose p99 was pushed past the budget by a burst of CPU
contention (three preempted calls in 256 are its p99) stays out for as long as the burst is in its window:
with the earlier 30 s limit, under load on two cores, that kept the neural model out of about half the
requests. With a short limit the burst is forgotten within a second or so, and a model that stays slow
keeps being skipped only as long as fresh samples (the predictor's background probes) say it is slow. The
newest sample is kept whatever its age, so that a late probe never leaves the window empty (an empty
window lets the next request try the model) while the model is still slow.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class LatencyWindow:
    def __init__(
        self,
        size: int = 256,
        *,
        refresh_every: int = 8,
        max_age_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._values: deque[tuple[float, float]] = deque(maxlen=size)
        self._refresh_every = max(1, refresh_every)
        self._since_refresh = 0
        self._p99: float | None = None
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()

    def record(self, ms: float) -> None:
        with self._lock:
            self._values.append((self._clock(), ms))
            self._since_refresh += 1
            # the first sample and then every few samples refresh the estimate
            if self._p99 is None or self._since_refresh >= self._refresh_every or ms > self._p99:
                self._refresh()

    def _refresh(self) -> None:
        if not self._values:
            self._p99 = None
            return
        ordered = sorted(ms for _, ms in self._values)
        index = min(len(ordered) - 1, int(0.99 * len(ordered)))
        self._p99 = ordered[index]
        self._since_refresh = 0

    def _expire(self) -> None:
        oldest_allowed = self._clock() - self._max_age_s  # type: ignore[operator]
        with self._lock:
            expired = False
            while len(self._values) > 1 and self._values[0][0] < oldest_allowed:
                self._values.popleft()
                expired = True
            if expired:
                self._refresh()

    def p99(self) -> float | None:
        """The 99th percentile of the recent calls (at least the newest) in ms, or None before the first."""
        values = self._values
        if self._max_age_s is not None and len(values) > 1 and values[0][0] < self._clock() - self._max_age_s:
            self._expire()
        return self._p99

    def __len__(self) -> int:
        return len(self._values)
