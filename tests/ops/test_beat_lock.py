"""One beat per deployment: of several beats on one PostgreSQL database, one sends the schedule and the
others stand by until its session ends (adsite/ops/beat.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from adsite.ops.beat import BeatLock, OutageQuietScheduler

pytestmark = pytest.mark.requires_postgres


@pytest.fixture
def lock_key() -> int:
    import random

    return random.randrange(1, 2**62)  # a key of this test's own: a running beat on this database keeps its lock


def _backend_terminate(lock: BeatLock) -> None:
    """The holder's host dies: its database session ends without a goodbye (the session holding the
    lock's advisory key, found as an operator would find it, in pg_locks)."""
    with psycopg.connect(**lock.conninfo, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
            (lock.key,),
        ).fetchall()
    assert killed == [(True,)]


def test_a_second_beat_stands_by_until_the_first_ones_session_ends(lock_key: int) -> None:
    base = BeatLock.from_settings()
    assert base is not None
    first = BeatLock(base.conninfo, key=lock_key, name="adsite-beat host-a 1")
    second = BeatLock(base.conninfo, key=lock_key, name="adsite-beat host-b 2")
    try:
        assert first.held() is True
        assert second.held() is False
        assert second.holder() == "adsite-beat host-a 1"
        assert first.held() is True  # still the one
        _backend_terminate(first)
        assert first.held() is False  # it notices before sending anything more
        assert second.held() is True
        assert first.held() is False
    finally:
        first.close()
        second.close()


def test_only_the_beat_holding_the_lock_sends_due_tasks(
    tmp_path: Path, lock_key: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adsite.celery import app

    monkeypatch.setattr("adsite.ops.beat.BEAT_LOCK_KEY", lock_key)
    sent: dict[str, list[str]] = {"a": [], "b": []}

    def scheduler(name: str) -> OutageQuietScheduler:
        beat = OutageQuietScheduler(app=app, schedule_filename=str(tmp_path / f"schedule-{name}"))
        beat.apply_entry = lambda entry, producer=None: sent[name].append(entry.name)  # type: ignore[method-assign]
        for entry in beat.schedule.values():  # every entry due now
            entry.last_run_at = app.now() - timedelta(hours=2)
        return beat

    a, b = scheduler("a"), scheduler("b")
    try:
        for _ in range(3):
            a.tick()
            b.tick()
        assert sent["a"], "the first beat sent nothing"
        assert sent["b"] == []
        _backend_terminate(a.lock)  # type: ignore[arg-type]
        a.tick()
        b.tick()
        assert sent["b"], "the standby did not take over"
    finally:
        a.close()
        b.close()


