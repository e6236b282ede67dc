"""Batched writes of events and ledger counters with raw SQL: the hot path never touches the ORM per row.

Promises:

* ``events_insert`` writes many rows and returns exactly the ids it inserted, so accepted / duplicate
  counts are exact and an insert repeated after a crash is harmless. SQLite: multi-row ``INSERT ... ON
  CONFLICT (event_id) DO NOTHING RETURNING event_id`` against the unique index. PostgreSQL (the table is
  partitioned by day, ``tracking.partitions``, and cannot have a unique index on ``event_id`` alone):
  the ids go first into ``tracking_event_key`` (``ON CONFLICT DO NOTHING RETURNING``), and only the
  events whose key was new are inserted, in the same statement for batches that go through ``COPY``.
  ``events_insert_count`` is the same write returning only how many rows were new, for bulk imports.
* ``ledger_add`` bumps ``LedgerCounter`` rows with ``value = value + n`` (an upsert).
* Both run on the caller's transaction: callers wrap them in ``transaction.atomic()`` so that the
  rows and the counters that count them commit together.

Rows use one canonical, JSON-friendly tuple form (:data:`ROW_FIELDS`), which is also what the Redis
Stream buffer carries; the per-database conversion (SQLite keeps UUIDs as 32 hex characters and
datetimes as text, as Django does) happens only here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db import connection

from tracking.models import Event, LedgerCounter

# The canonical row: (event_id, type, user_id, session_id, ts_ms, received_at_us, url, referrer,
# item_id, categories_json, ad_json_or_None, properties_json, is_bot, ip, user_agent, source)
ROW_FIELDS = (
    "event_id",
    "type",
    "user_id",
    "session_id",
    "ts",
    "received_at",
    "url",
    "referrer",
    "item_id",
    "categories",
    "ad",
    "properties",
    "is_bot",
    "ip",
    "user_agent",
    "source",
)
Row = tuple[Any, ...]
# Rows per INSERT statement: 16 parameters each stays far below SQLite's 32766 variables.
ROWS_PER_STATEMENT = 500


def json_compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=8192)
def categories_json(categories: tuple[str, ...]) -> str:
    """The stored JSON of a category tuple (few distinct tuples occur: cached)."""
    return json_compact(list(categories))


_EPOCH_NAIVE = datetime(1970, 1, 1, tzinfo=UTC).replace(tzinfo=None)


def _sqlite_dt(epoch_us: int) -> str:
    # Django's SQLite backend stores aware datetimes as naive UTC text.
    return (_EPOCH_NAIVE + timedelta(microseconds=epoch_us)).isoformat(" ")


def _pg_dt(epoch_us: int) -> datetime:
    return datetime.fromtimestamp(epoch_us / 1_000_000, tz=UTC)


# A batch shares one receive time: convert it once.
_sqlite_received = lru_cache(maxsize=8)(_sqlite_dt)


def _db_row_sqlite(row: Row) -> tuple[Any, ...]:
    return (
        row[0].replace("-", ""),
        row[1],
        row[2],
        row[3],
        _sqlite_dt(row[4] * 1000),
        _sqlite_received(row[5]),
        *row[6:],
    )


def _db_row_pg(row: Row) -> tuple[Any, ...]:
    return (row[0], row[1], row[2], row[3], _pg_dt(row[4] * 1000), _pg_dt(row[5]), *row[6:])


def _canonical_id(value: object) -> str:
    text = str(value).replace("-", "")
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _insert_sql(n_rows: int, placeholder: str, returning: bool = True, on_conflict: bool = True) -> str:
    table = Event._meta.db_table
    columns = ", ".join(ROW_FIELDS)
    one = "(" + ", ".join([placeholder] * len(ROW_FIELDS)) + ")"
    values = ", ".join([one] * n_rows)
    conflict = " ON CONFLICT (event_id) DO NOTHING" if on_conflict else ""
    tail = " RETURNING event_id" if returning else ""
    return f"INSERT INTO {table} ({columns}) VALUES {values}{conflict}{tail}"


_SQL_CACHE: dict[tuple[int, str, bool], str] = {}


def db_params(rows: Sequence[Row]) -> list[tuple[Any, ...]]:
    """``rows`` converted for this database's driver (may run on another thread: no query is made)."""
    convert = _db_row_sqlite if connection.vendor == "sqlite" else _db_row_pg
    return [convert(row) for row in rows]


def events_insert(rows: Sequence[Row], *, params: Sequence[tuple[Any, ...]] | None = None) -> set[str]:
    """Insert ``rows`` (canonical form); return the canonical ids actually inserted (not duplicates).

    ``params``: the same rows already converted by :func:`db_params` (the importer converts on its
    preparing thread). Uses the raw DB-API cursor of Django's connection (so it joins the caller's
    transaction) to skip the debug cursor's per-query formatting, which would dominate a large import.
    """
    inserted: set[str] = set()
    _events_write(rows, params=params, inserted=inserted)
    return inserted


def events_insert_count(rows: Sequence[Row], *, params: Sequence[tuple[Any, ...]] | None = None) -> int:
    """Insert ``rows`` like :func:`events_insert` but return only how many were inserted.

    No ``RETURNING``: each statement's row count (SQLite ``changes()``, PostgreSQL's command tag) is
    summed, which is exact because ``ON CONFLICT DO NOTHING`` counts only rows it wrote. Cheaper for
    bulk imports that do not need the ids.
    """
    return _events_write(rows, params=params, inserted=None)


def _events_write(
    rows: Sequence[Row], *, params: Sequence[tuple[Any, ...]] | None, inserted: set[str] | None
) -> int:
    if not rows:
        return 0
    # The raw DB-API cursor raises the driver's own errors: give callers Django's (``DatabaseError``,
    # ``OperationalError``...), which they catch, as for any ORM query.
    with connection.wrap_database_errors:
        return _events_write_raw(rows, params=params, inserted=inserted)


def _events_write_raw(
    rows: Sequence[Row], *, params: Sequence[tuple[Any, ...]] | None, inserted: set[str] | None
) -> int:
    connection.ensure_connection()
    vendor = connection.vendor
    converted = db_params(rows) if params is None else params
    returning = inserted is not None
    if vendor == "postgresql":
        if len(converted) >= COPY_MIN_ROWS:
            return _events_insert_copy(converted, inserted)
        return _events_insert_keyed(converted, inserted)
    placeholder = "?" if vendor == "sqlite" else "%s"
    count = 0
    cursor = connection.connection.cursor()
    try:
        for start in range(0, len(converted), ROWS_PER_STATEMENT):
            chunk = converted[start : start + ROWS_PER_STATEMENT]
            key = (len(chunk), vendor, returning)
            sql = _SQL_CACHE.get(key)
            if sql is None:
                sql = _SQL_CACHE[key] = _insert_sql(len(chunk), placeholder, returning)
            flat: list[Any] = []
            for values in chunk:
                flat.extend(values)
            cursor.execute(sql, flat)
            if inserted is None:
                count += cursor.rowcount
            else:
                found = cursor.fetchall()
                count += len(found)
                inserted.update(_canonical_id(value[0]) for value in found)
    finally:
        cursor.close()
    return count


# PostgreSQL: the dedupe keys of the partitioned events table (tracking.partitions).
KEY_TABLE = "tracking_event_key"


def _uuid_text(value: object) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _events_insert_keyed(converted: Sequence[tuple[Any, ...]], inserted: set[str] | None) -> int:
    """PostgreSQL, small batches: claim the ids in ``tracking_event_key`` (``ON CONFLICT DO NOTHING
    RETURNING``: a concurrent writer's uncommitted claim is waited for), then insert the events whose
    claim was new (the first of repeated ids), with plain multi-row ``INSERT``s."""
    cursor = connection.connection.cursor()
    try:
        # claimed in id order: two writers claiming the same ids take their row locks in the same order
        ids = sorted({_uuid_text(values[0]) for values in converted})
        placeholders = ", ".join(["(%s::uuid)"] * len(ids))
        cursor.execute(
            f"INSERT INTO {KEY_TABLE} (event_id) VALUES {placeholders} ON CONFLICT DO NOTHING RETURNING event_id",
            ids,
        )
        claimed = {str(value[0]) for value in cursor.fetchall()}
        fresh: list[tuple[Any, ...]] = []
        for values in converted:
            event_id = _uuid_text(values[0])
            if event_id in claimed:
                claimed.discard(event_id)
                fresh.append(values)
        for start in range(0, len(fresh), ROWS_PER_STATEMENT):
            chunk = fresh[start : start + ROWS_PER_STATEMENT]
            key = (len(chunk), "postgresql-keyed", False)
            sql = _SQL_CACHE.get(key)
            if sql is None:
                sql = _SQL_CACHE[key] = _insert_sql(len(chunk), "%s", returning=False, on_conflict=False)
            flat: list[Any] = []
            for values in chunk:
                flat.extend(values)
            cursor.execute(sql, flat)
    finally:
        cursor.close()
    if inserted is not None:
        inserted.update(_canonical_id(values[0]) for values in fresh)
    return len(fresh)


# PostgreSQL: from this many rows on, COPY into a temporary table and INSERT ... SELECT from it.
COPY_MIN_ROWS = 1000
_LOAD_TABLE = "tracking_event_load"
_LOAD_COLUMNS = (
    "event_id uuid, type text, user_id text, session_id text, ts timestamptz, received_at timestamptz, "
    "url text, referrer text, item_id text, categories jsonb, ad jsonb, properties jsonb, is_bot boolean, "
    "ip text, user_agent text, source text"
)


def _events_insert_copy(converted: Sequence[tuple[Any, ...]], inserted: set[str] | None) -> int:
    """The PostgreSQL fast path: ``COPY`` the batch into a per-session temporary table (emptied at
    commit), then one statement claims the ids in ``tracking_event_key`` and inserts the events whose
    claim was new: ``WITH new AS (INSERT INTO key ... ON CONFLICT DO NOTHING RETURNING event_id)
    INSERT INTO tracking_event SELECT ... JOIN new``."""
    table = Event._meta.db_table
    columns = ", ".join(ROW_FIELDS)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_LOAD_TABLE} ({_LOAD_COLUMNS}) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {_LOAD_TABLE}")
        # of an id repeated in the batch only the first row is loaded (ids are canonical, lowercase: the
        # schema's), so the join below needs no DISTINCT ON, which sorted the whole batch
        seen: set[object] = set()
        with cursor.copy(f"COPY {_LOAD_TABLE} ({columns}) FROM STDIN") as copy:
            for values in converted:
                if values[0] not in seen:
                    seen.add(values[0])
                    copy.write_row(values)
        tail = " RETURNING event_id" if inserted is not None else ""
        cursor.execute(
            f"WITH new AS (INSERT INTO {KEY_TABLE} (event_id) SELECT event_id FROM {_LOAD_TABLE} ORDER BY event_id "
            "ON CONFLICT DO NOTHING RETURNING event_id) "
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {_LOAD_TABLE} JOIN new USING (event_id){tail}"
        )
        if inserted is None:
            count = cursor.rowcount
        else:
            found = cursor.fetchall()
            count = len(found)
            inserted.update(str(value[0]) for value in found)
        cursor.execute(f"TRUNCATE {_LOAD_TABLE}")
    finally:
        cursor.close()
    return count


def ledger_add(counts: dict[str, int]) -> None:
    """Add to ledger counters (``value = value + n``) on the caller's transaction; zero counts are skipped."""
    items = [(name, n) for name, n in counts.items() if n]
    if not items:
        return
    table = LedgerCounter._meta.db_table
    placeholder = "?" if connection.vendor == "sqlite" else "%s"
    sql = (
        f"INSERT INTO {table} (name, value) VALUES ({placeholder}, {placeholder}) "
        f"ON CONFLICT (name) DO UPDATE SET value = {table}.value + excluded.value"
    )
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            for name, n in items:
                cursor.execute(sql, (name, n))
        finally:
            cursor.close()


def received_at_of(event_ids: Iterable[str]) -> dict[str, datetime]:
    """The stored ``received_at`` of each of ``event_ids`` that exists (canonical id -> datetime)."""
    ids = list(event_ids)
    found: dict[str, datetime] = {}
    for start in range(0, len(ids), 1000):
        for event_id, received_at in Event.objects.filter(event_id__in=ids[start : start + 1000]).values_list(
            "event_id", "received_at"
        ):
            found[str(event_id)] = received_at
    return found
