"""Celery beat's scheduler: exactly one sends per deployment, and quiet during an outage.

One beat per deployment, however many hosts run the ``beat`` role (``ADSITE_ROLES``): a beat sends the
schedule only while it holds a PostgreSQL session advisory lock (``BeatLock``, key ``BEAT_LOCK_KEY``,
one per database) on a connection of its own. Any other beat stands by: it sends nothing and tries the
lock again every ``STANDBY_POLL_S``. The lock goes with the session, so a beat that exits, is killed or
loses its host frees it (PostgreSQL notices a vanished host through the connection's TCP keepalives,
within about ``KEEPALIVE_S``), and a standby takes over at its next try. The holder checks its
connection before every tick and stops sending the moment it cannot (``beat.lock_lost``): two beats
can overlap only while a holder's check is in flight, and every scheduled task is safe to run twice.
With another database (SQLite, embedded mode: no beat at all) there is no lock and the beat sends.

Celery's own ``Scheduler.apply_entry`` logs every failed send as an ERROR with the whole stack and the
traceback (about 85 lines), once per task per schedule: a 20 s Redis outage with a 1 s flush schedule
wrote thousands of lines. Here a failed send logs one WARNING line naming the task and the error when
the broker stops taking tasks, nothing while it stays down, and one line with the count of missed
sends when a send succeeds again. Nothing else changes: the entry is still advanced (a missed run is
not replayed, as in Celery), and the next due time comes as scheduled.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from celery.beat import PersistentScheduler

logger = logging.getLogger("celery.beat")

# pg_advisory_lock's key for "the beat of this database" (the bytes of "adsbeat1")
BEAT_LOCK_KEY = 0x6164736265617431
STANDBY_POLL_S = 5.0
KEEPALIVE_S = 30


class BeatLock:
    """The deployment's one-beat lock: a session advisory lock on a PostgreSQL connection of its own."""

    def __init__(self, conninfo: dict[str, Any], *, key: int = BEAT_LOCK_KEY, name: str = "") -> None:
        self.conninfo = conninfo
        self.key = key
        self.name = name or f"adsite-beat {socket.gethostname()} {os.getpid()}"
        self._conn: Any = None
        self._holding = False
        self._standby_logged = False

    @classmethod
    def from_settings(cls) -> BeatLock | None:
        """The lock on the site's database, or None when that is not PostgreSQL."""
        from django.conf import settings

        database = settings.DATABASES["default"]
        if database["ENGINE"] != "django.db.backends.postgresql":
            return None
        conninfo = {
            "dbname": database.get("NAME") or "",
            "user": database.get("USER") or "",
            "password": database.get("PASSWORD") or "",
            "host": database.get("HOST") or "",
            "port": str(database.get("PORT") or ""),
        }
        return cls({k: v for k, v in conninfo.items() if v}, key=BEAT_LOCK_KEY)

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            **self.conninfo,
            autocommit=True,
            connect_timeout=5,
            application_name=self.name[:63],
            # a holder whose host vanished frees the lock once PostgreSQL's keepalives give up on it
            keepalives=1,
            keepalives_idle=KEEPALIVE_S // 3,
            keepalives_interval=KEEPALIVE_S // 6,
            keepalives_count=3,
        )

    def held(self) -> bool:
        """Whether this beat holds the lock now: checks a held lock's connection, else tries to take it."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
                self._holding = False
            if self._holding:
                self._conn.execute("SELECT 1").fetchone()
                return True
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            self._holding = bool(row and row[0])
        except Exception as exc:
            if self._holding:
                logger.warning("beat.lock_lost: %s; sending nothing until the lock is held again", exc)
            self._holding = False
            self.close()
            return False
        if self._holding:
            logger.warning("beat.lock_acquired: %s sends the schedule (one beat per database)", self.name)
            self._standby_logged = False
        elif not self._standby_logged:
            logger.warning(
                "beat.standby: %s: another beat holds the lock (%s); trying again every %.0f s",
                self.name, self.holder() or "unknown", STANDBY_POLL_S,
            )
            self._standby_logged = True
        return self._holding

    def holder(self) -> str | None:
        """The holding session's application name (``adsite-beat <host> <pid>``), if visible."""
        if self._conn is None:
            return None
        try:
            row = self._conn.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
                (self.key,),
            ).fetchone()
        except Exception:
            return None
        return str(row[0]) if row else None

    def close(self) -> None:
        conn, self._conn, self._holding = self._conn, None, False
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


class OutageQuietScheduler(PersistentScheduler):
    """``PersistentScheduler`` that sends only while it holds the deployment's beat lock (``BeatLock``), and
    whose failed sends are one line per state change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._failing_since: float | None = None
        self._missed = 0
        self.lock = BeatLock.from_settings()
        if self.lock is None:
            logger.warning("beat.no_lock: the database is not PostgreSQL; run one beat (ADSITE_ROLES)")
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if self.lock is not None and not self.lock.held():
            return STANDBY_POLL_S  # a standby: nothing sent, the lock tried again then
        return float(super().tick(*args, **kwargs))

    def close(self) -> None:
        super().close()
        if self.lock is not None:
            self.lock.close()

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
