"""An outage must not flood the logs: repeated warnings once a minute with a count; beat one line per state."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from adsite.ops import log_repeats
from adsite.ops.log_repeats import RepeatedRecordFilter


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.tracebacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.tracebacks += bool(record.exc_info)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    now = SimpleNamespace(t=1000.0)
    monkeypatch.setattr(log_repeats.time, "monotonic", lambda: now.t)
    return now


def _logger(name: str) -> tuple[logging.Logger, Collect]:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.handlers = []
    handler = Collect()
    handler.addFilter(RepeatedRecordFilter(window_s=60))
    logger.addHandler(handler)
    return logger, handler


def test_a_warning_repeated_per_request_is_written_once_a_minute_with_a_count(clock: Any) -> None:
    logger, handler = _logger("test.repeats.one")
    for _ in range(300):
        logger.warning("ads.ledger_unavailable at reservation: house ads")
        clock.t += 0.1  # 300 requests in 30 s
    logger.info("tracking.flushed")  # INFO is never held back
    assert handler.lines == ["ads.ledger_unavailable at reservation: house ads", "tracking.flushed"]
    clock.t += 31
    logger.warning("ads.ledger_unavailable at reservation: house ads")
    assert handler.lines[-1] == (
        "ads.ledger_unavailable at reservation: house ads [and 299 more like this in the last 60 s, not logged]"
    )


def test_kinds_stay_apart_by_template_argument_and_exception_and_the_first_keeps_its_traceback(clock: Any) -> None:
    logger, handler = _logger("test.repeats.two")
    for _ in range(5):
        for path in ("/readyz", "/collect"):
            logger.error("Service Unavailable: %s", path)
        try:
            raise ConnectionError("refused")
        except ConnectionError:
            logger.exception("tracking.storage_unavailable")
    assert handler.lines == [
        "Service Unavailable: /readyz", "Service Unavailable: /collect", "tracking.storage_unavailable",
    ]
    assert handler.tracebacks == 1
    clock.t += 61
    logger.error("rate %s%% down", 50)  # a template with its own %: the count suffix keeps it formattable
    logger.error("rate %s%% down", 50)
    clock.t += 61
    logger.error("rate %s%% down", 50)
    assert handler.lines[-1] == "rate 50% down [and 1 more like this in the last 60 s, not logged]"


def test_beat_logs_one_line_when_sends_start_failing_and_one_when_they_work_again(
    caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    from celery.beat import SchedulingError

    from adsite.celery import app
    from adsite.ops.beat import OutageQuietScheduler

    scheduler = OutageQuietScheduler(app=app, lazy=True, schedule_filename=str(tmp_path / "beat"))
    outcome: dict[str, Any] = {"fail": True}

    def apply_async(entry: Any, producer: Any = None, advance: bool = True) -> Any:
        if outcome["fail"]:
            raise SchedulingError("Couldn't apply scheduled task flush-events: Timeout reading from socket")
        return SimpleNamespace(id="1")

    scheduler.apply_async = apply_async  # type: ignore[method-assign]
    entry = SimpleNamespace(name="flush-events", task="tracking.flush_events")
    caplog.set_level(logging.DEBUG, logger="celery.beat")
    caplog.clear()  # what the scheduler said at start-up (e.g. beat.no_lock on SQLite) is not the outage's
    for _ in range(20):
        scheduler.apply_entry(entry)
    outcome["fail"] = False
    scheduler.apply_entry(entry)
    scheduler.apply_entry(entry)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == ["beat.send_failing", "beat.send_recovered"]
    assert "20 scheduled sends were skipped" in warnings[1].getMessage()
    assert not any(r.exc_info for r in warnings)
