"""Celery beat's scheduler, quiet during an outage: one line when sending starts failing, one when it works again.

Celery's own ``Scheduler.apply_entry`` logs every failed send as an ERROR with the whole stack and the
traceback (about 85 lines), once per task per schedule: a 20 s Redis outage with a 1 s flush schedule
wrote thousands of lines. Here a failed send logs one WARNING line naming the task and the error when
the broker stops taking tasks, nothing while it stays down, and one line with the count of missed
sends when a send succeeds again. Nothing else changes: the entry is still advanced (a missed run is
not replayed, as in Celery), and the next due time comes as scheduled.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import PersistentScheduler

logger = logging.getLogger("celery.beat")


class OutageQuietScheduler(PersistentScheduler):
    """``PersistentScheduler`` whose failed sends are one line per state change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._failing_since: float | None = None
        self._missed = 0
        super().__init__(*args, **kwargs)

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        logger.debug("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:
            self._missed += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                cause = exc.__cause__ or exc
                logger.warning(
                    "beat.send_failing: cannot send %s (%s: %s); scheduled tasks are skipped until the "
                    "broker answers (one line when it does)",
                    entry.name, type(cause).__name__, cause,
                )
            return
        if self._failing_since is not None:
            logger.warning(
                "beat.send_recovered: sending again after %.1f s; %d scheduled sends were skipped",
                time.monotonic() - self._failing_since, self._missed,
            )
            self._failing_since = None
            self._missed = 0
