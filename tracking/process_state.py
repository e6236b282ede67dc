"""What one tracking process remembers between batches: whether its event buffer and its feature store are
in an outage, so that each outage is logged once when it starts and once when it ends, not per request.

A ``PerProcess`` value (``inference.api.PerProcess``), like inference's backends and the ads side's platform:
built on first use, the process's own after a fork (a web worker never inherits its master's outage), and
replaced whole in tests (``tracking_state_use``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from inference.api import PerProcess

logger = logging.getLogger(__name__)

__all__ = ["BufferOutage", "StoreOutage", "TrackingState", "tracking_state", "tracking_state_use"]


@dataclass(eq=False)
class BufferOutage:
    """The event buffer (Redis) unreachable: batches written through to the database meanwhile."""

    down_since: float | None = None  # monotonic seconds
    batches: int = 0

    def down(self, exc: Exception) -> None:
        self.batches += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.warning(
                "tracking.buffer_unavailable (%s): writing batches through to the database until it answers",
                type(exc).__name__,
            )

    def up(self) -> None:
        if self.down_since is not None:
            logger.warning(
                "tracking.buffer_available again after %.1f s; %d batches were written through",
                time.monotonic() - self.down_since, self.batches,
            )
            self.down_since, self.batches = None, 0


@dataclass(eq=False)
class StoreOutage:
    """The online feature store unreachable: events backlogged for ``features_catch_up`` meanwhile."""

    since: str = ""  # ISO time of the first failed update; "" while the store answers
    backlogged: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def backlog(self, rows: int, *, now: datetime) -> bool:
        """Count ``rows`` backlogged; True when this starts the outage."""
        with self._lock:
            first = not self.since
            if first:
                self.since = now.isoformat()
            self.backlogged += rows
            return first

    def current(self) -> dict[str, object] | None:
        with self._lock:
            return {"since": self.since, "backlogged": self.backlogged} if self.since else None

    def end(self) -> dict[str, object] | None:
        """End the outage if one runs; what it was (None: none ran)."""
        if not self.since:
            return None
        with self._lock:
            ended = {"since": self.since, "backlogged": self.backlogged} if self.since else None
            self.since, self.backlogged = "", 0
            return ended


@dataclass(eq=False)
class TrackingState:
    buffer: BufferOutage = field(default_factory=BufferOutage)
    store: StoreOutage = field(default_factory=StoreOutage)


_state: PerProcess[TrackingState] = PerProcess(TrackingState)


def tracking_state() -> TrackingState:
    """This process's tracking state (a fresh one after a fork)."""
    return _state.get()


def tracking_state_use(replacement: TrackingState | None) -> TrackingState | None:
    """Install ``replacement`` (None: a fresh one on next use); returns the previous one."""
    return _state.install(replacement)
