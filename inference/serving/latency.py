"""Recent latency per model: a sliding window of the last N calls and its p99.

The p99 is recomputed every few records rather than on every read, because it is read on every
request (to decide whether a model can answer in the time left) and sorting 256 floats per request
would cost more than the decision is worth.
"""

from __future__ import annotations

import threading
from collections import deque


class LatencyWindow:
    def __init__(self, size: int = 256, *, refresh_every: int = 8) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._refresh_every = max(1, refresh_every)
        self._since_refresh = 0
        self._p99: float | None = None
        self._lock = threading.Lock()

    def record(self, ms: float) -> None:
        with self._lock:
            self._values.append(ms)
            self._since_refresh += 1
            # the first sample and then every few samples refresh the estimate
            if self._p99 is None or self._since_refresh >= self._refresh_every or ms > self._p99:
                self._refresh()

    def _refresh(self) -> None:
        ordered = sorted(self._values)
        index = min(len(ordered) - 1, int(0.99 * len(ordered)))
        self._p99 = ordered[index]
        self._since_refresh = 0

    def p99(self) -> float | None:
        """The 99th percentile of the recent calls in ms, or None before any call."""
        return self._p99

    def __len__(self) -> int:
        return len(self._values)
