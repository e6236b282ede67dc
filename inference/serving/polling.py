"""The background thread of a web process: polls the registry every ``poll_seconds`` and runs the
latency probes every probe period in between. A failed poll is logged and kept as ``last_error``;
the thread never dies of one. Before its first poll it runs ``on_start`` (the wiring imports the model
code there, so a first activation finds it imported)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

__all__ = ["RegistryPoller"]


class RegistryPoller:
    def __init__(
        self,
        *,
        refresh: Callable[[], object],
        probe: Callable[[], object],
        poll_seconds: float,
        probe_period: float,
        timer: Callable[[], float],
        on_exit: Callable[[], None] | None = None,
        after_poll: Callable[[], None] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self._refresh = refresh
        self._probe = probe
        self._poll_seconds = poll_seconds
        self._probe_period = probe_period
        self._timer = timer
        # run by the thread as it ends (the wiring closes the thread's database connection)
        self._on_exit = on_exit
        # run by the thread after each registry poll (the wiring empties the thread's query log under DEBUG)
        self._after_poll = after_poll
        # run by the thread before its first poll (the wiring imports the model code: seconds, off the requests)
        self._on_start = on_start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="inference-model-poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        if self._on_start is not None:
            try:
                self._on_start()
            except Exception:
                logger.exception("inference.poll_thread_start_failed")
        next_refresh = self._timer() + self._poll_seconds
        while not self._stop.wait(self._probe_period):
            if self._timer() >= next_refresh:
                next_refresh = self._timer() + self._poll_seconds
                try:
                    self._refresh()
                    self.last_error = ""
                except Exception as exc:
                    self.last_error = repr(exc)
                    logger.warning("inference.registry_poll_failed: %r", exc)
                if self._after_poll is not None:
                    try:
                        self._after_poll()
                    except Exception:
                        logger.exception("inference.poll_thread_after_poll_failed")
            self._probe()
        if self._on_exit is not None:
            try:
                self._on_exit()
            except Exception:
                logger.exception("inference.poll_thread_exit_failed")
