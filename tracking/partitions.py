"""The events table's daily partitions on PostgreSQL: created ahead, split out of the default, dropped whole.

On PostgreSQL ``tracking_event`` is range-partitioned by day (UTC) on ``received_at`` (migration 0004;
SQLite, the embedded default, keeps one plain table and everything here is a no-op there).

Why ``received_at`` and not ``ts``: it is our clock, so a batch written now lands in today's partition
(one partition per flush, appended to), while ``ts`` is the sender's clock, which may be days off or
wrong; retention is already defined on ``received_at`` (an event is kept ``RETENTION_DAYS`` after we
received it), so a partition older than the cutoff holds only expired rows and is dropped whole; and
imports stamp ``received_at`` with the import time, so months of history imported today do not create
months of partitions. Reads over a ``ts`` window (training) scan every partition's ``event_ts`` index.

Promises:

* ``event_partitions_ensure`` creates the partitions of today and ``PARTITIONS_AHEAD_DAYS`` days ahead
  (the beat task ``tracking.partitions_ensure``, hourly) and splits any day found in the DEFAULT
  partition out into its own partition (rows moved in the same transaction). Writes never need a
  partition to exist: a row whose day has none lands in ``tracking_event_default`` (so a flush never fails
  because beat was down) and is moved out at the next run.
* ``event_partitions_drop_before`` drops whole day partitions older than a day: their rows are counted in
  the ledger (``deleted``), their dedupe keys removed, in one transaction with the drop; it waits at most
  ``LOCK_TIMEOUT`` for the table lock (a long reader makes it retry at the next run, not stall the flush).

Dedupe across partitions: a unique index on a partitioned table must contain the partition key, so
``UNIQUE (event_id)`` is impossible there; ``tracking_event_key`` (``event_id`` primary key) holds one row
per stored event and ``tracking.storage`` inserts into it first, in the same transaction, and stores only
the events whose key was new. Triggers on ``tracking_event`` delete a key when its event row is deleted
(a visitor's deletion, a row purge) or truncated, so a deleted event can be stored again, as on SQLite.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import OperationalError, connection, transaction

from tracking.conf import tracking_settings

logger = logging.getLogger(__name__)

TABLE = "tracking_event"
KEY_TABLE = "tracking_event_key"
DEFAULT_PARTITION = "tracking_event_default"
LOCK_TIMEOUT = "5s"
_DAY_NAME = re.compile(r"^tracking_event_p(\d{8})$")
# serialises concurrent ensure runs (a beat, a command, a migration): one creates, the others see it
_ENSURE_LOCK = 0x7472_6B70  # "trkp"


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    day: date | None  # None: the DEFAULT partition
    rows: int  # the planner's estimate (pg_class.reltuples; -1 when never analysed)


def partitioned() -> bool:
    """True where the events table is partitioned (PostgreSQL, after migration 0004)."""
    return connection.vendor == "postgresql"


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def _bounds(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start.isoformat(), (start + timedelta(days=1)).isoformat()


def event_partitions() -> list[Partition]:
    """The events table's partitions, day partitions oldest first, then the DEFAULT one (empty on SQLite)."""
    if not partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        found = cursor.fetchall()
    days = []
    default = None
    for name, rows in found:
        match = _DAY_NAME.match(name)
        if match:
            digits = match.group(1)
            day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
            days.append(Partition(name, day, int(rows)))
        elif name == DEFAULT_PARTITION:
            default = Partition(name, None, int(rows))
    days.sort(key=lambda part: part.day or date.min)
    return days + ([default] if default else [])


def day_partitions_create(cursor: object, days: list[date]) -> list[str]:
    """Create the partitions of ``days`` that do not exist, moving rows of those days out of the DEFAULT
    partition if it holds any; return the names created. Runs on ``cursor`` (a DB-API cursor of the
    caller's transaction; also used by migration 0004, before Django's models apply)."""
    execute = cursor.execute  # type: ignore[attr-defined]
    execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        [TABLE],
    )
    existing = {row[0] for row in cursor.fetchall()}  # type: ignore[attr-defined]
    created = []
    for day in sorted(set(days)):
        name = partition_name(day)
        if name in existing:
            continue
        low, high = _bounds(day)
        moved = 0
        if DEFAULT_PARTITION in existing:
            execute(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE received_at >= %s AND received_at < %s)",
                    [low, high])
            moved = int(cursor.fetchone()[0])  # type: ignore[attr-defined]
        if moved:
            # A day that has rows in the DEFAULT partition: a new partition over them cannot be created
            # while they are there. Build it beside the table, move the rows (the DELETE targets the
            # partition directly, so the table's key-deleting trigger does not fire: the keys stay), then
            # attach it (which builds its indexes once, after the load).
            execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            execute(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE received_at >= %s AND received_at < %s "
                f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                [low, high],
            )
            execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [low, high])
        else:
            execute(f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)", [low, high])
        existing.add(name)
        created.append(name)
    return created


def event_partitions_ensure(*, ahead_days: int | None = None, today: date | None = None) -> list[str]:
    """Create today's partition and those of the next ``ahead_days`` days (default
    ``TRACKING["PARTITIONS_AHEAD_DAYS"]``), and one for each day found in the DEFAULT partition.
    Returns the names created; safe to run twice and concurrently. No-op on SQLite."""
    if not partitioned():
        return []
    ahead = tracking_settings().PARTITIONS_AHEAD_DAYS if ahead_days is None else ahead_days
    first = today or datetime.now(tz=UTC).date()
    days = [first + timedelta(days=offset) for offset in range(int(ahead) + 1)]
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ENSURE_LOCK])
            # creating a partition locks the table: never wait long behind a reader (retried next run)
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(f"SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date FROM {DEFAULT_PARTITION}")
            days.extend(row[0] for row in cursor.fetchall())
            created = day_partitions_create(cursor, days)
    except OperationalError as exc:
        logger.warning("tracking.partitions_ensure_waiting: %s", str(exc).splitlines()[0][:200])
        return []
    if created:
        logger.info("tracking.partitions_created %s", ", ".join(created))
    return created


def event_partitions_drop_before(day: date) -> tuple[list[str], int]:
    """Drop every day partition older than ``day`` (the rows received before ``day`` 00:00 UTC), each in
    its own transaction with its ledger count (``deleted``) and its dedupe keys. Returns (names dropped,
    rows dropped). A partition whose table lock is not granted within ``LOCK_TIMEOUT`` is left for the
    next run (logged). No-op on SQLite."""
    from tracking.storage import ledger_add

    dropped: list[str] = []
    rows = 0
    for part in event_partitions():
        if part.day is None or part.day >= day:
            continue
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                # the partition's rows frozen first (nothing writes to a past day but a moved row), then
                # counted and their keys removed; only the DROP locks the whole table, briefly
                cursor.execute(f"LOCK TABLE {part.name} IN SHARE MODE")
                cursor.execute(f"SELECT count(*) FROM {part.name}")
                n = int(cursor.fetchone()[0])
                cursor.execute(f"DELETE FROM {KEY_TABLE} k USING {part.name} e WHERE k.event_id = e.event_id")
                cursor.execute(f"DROP TABLE {part.name}")
                ledger_add({"deleted": n})
        except OperationalError as exc:  # lock_timeout: a long query holds the table
            logger.warning("tracking.partition_drop_waiting %s: %s", part.name, str(exc).splitlines()[0][:200])
            continue
        dropped.append(part.name)
        rows += n
    if dropped:
        logger.info("tracking.partitions_dropped", extra={"partitions": dropped, "events": rows})
    return dropped, rows
