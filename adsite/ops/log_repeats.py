"""No log floods during an outage: a repeated WARNING or worse is written once per minute, with a count.

During an outage every request meets the same failure (Redis unreachable, the database down) and
would log the same line, traceback included: hundreds of lines a second that bury the one that says
what happened. ``RepeatedRecordFilter`` sits on the site's log handlers (``settings.LOGGING``, and the
Celery worker's and beat's handlers, ``adsite/celery.py``): the first record of a kind passes (its
traceback too), the same kind again within ``window_s`` is counted and dropped, and the first one
after the window says how many were dropped. A kind is the logger, the level, the message template,
its first argument (so ``Internal Server Error: %s`` stays apart per path) and the exception's type.
INFO and DEBUG pass untouched. Per process: each gunicorn worker writes at most one line per kind
and window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

WINDOW_S = 60.0
MAX_KINDS = 2_000


class RepeatedRecordFilter(logging.Filter):
    """Pass the first record of each kind per ``window_s``; count the others (see the module docstring)."""

    def __init__(self, window_s: float = WINDOW_S, level: int = logging.WARNING) -> None:
        super().__init__()
        self.window_s = window_s
        self.level = level
        self._seen: dict[tuple[object, ...], list[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _kind(record: logging.LogRecord) -> tuple[object, ...]:
        args = record.args
        if isinstance(args, Mapping):
            first: object = args.get("name", "")
        elif isinstance(args, tuple) and args:
            first = args[0]
        else:
            first = ""
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        return (record.name, record.levelno, str(record.msg)[:200], str(first)[:200], exc_type)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        if getattr(record, "_repeats_checked", False):  # a second handler of the same record
            return not getattr(record, "_repeats_dropped", False)
        record._repeats_checked = True  # type: ignore[attr-defined]
        kind = self._kind(record)
        now = time.monotonic()
        with self._lock:
            state = self._seen.get(kind)
            if state is not None and now - state[0] < self.window_s:
                state[1] += 1
                record._repeats_dropped = True  # type: ignore[attr-defined]
                return False
            dropped = int(state[1]) if state is not None else 0
            if len(self._seen) >= MAX_KINDS:
                self._seen.clear()
            self._seen[kind] = [now, 0]
        if dropped:
            suffix = f" [and {dropped} more like this in the last {self.window_s:.0f} s, not logged]"
            if isinstance(record.msg, str):
                record.msg = record.msg + suffix.replace("%", "%%") if record.args else record.msg + suffix
            else:
                record.msg = f"{record.msg}{suffix}"
        return True


_shared = RepeatedRecordFilter()


def repeated_record_filter() -> RepeatedRecordFilter:
    """The process's one filter (``settings.LOGGING`` builds it through this, Celery's handlers share it)."""
    return _shared


def handlers_quieted(logger: logging.Logger) -> None:
    """Put the process's filter on every handler of ``logger`` (Celery replaces Django's handlers)."""
    for handler in logger.handlers:
        if _shared not in handler.filters:
            handler.addFilter(_shared)
