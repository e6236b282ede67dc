"""The flush's database write on PostgreSQL: rows/s of each way to store a batch of events.

    DATABASE_URL=postgres://.../scratch DJANGO_DEBUG=0 DJANGO_SECRET_KEY=bench-... \
        python -m benchmarks.event_write [--rows 100000] [--batch 5000] [--rounds 3]

Migrates the database named by ``DATABASE_URL`` (use a scratch one: the events table is truncated
between measurements), then writes ``--rows`` fresh events in batches of ``--batch`` rows (the flush's
``TRACKING["FLUSH_BATCH"]``), one transaction per batch, by each method, rounds interleaved; prints one
JSON object with the median and best rows/s of each method and a Markdown table. Methods, all into the day-
partitioned ``tracking_event`` (today's partition) unless said:

- ``bulk_create``: Django's ``Event.objects.bulk_create`` of model instances, no dedupe;
- ``bulk_create+keys``: the same after claiming the ids in ``tracking_event_key`` (the dedupe);
- ``insert``: multi-row ``INSERT`` statements of 500 rows, no dedupe;
- ``insert+keys``: what ``tracking.storage`` does below 1,000 rows (claim, then multi-row INSERT);
- ``copy``: ``COPY`` straight into the table, no dedupe;
- ``copy+select``: ``COPY`` into a temporary table, then ``INSERT ... SELECT``, no dedupe;
- ``copy+keys``: what ``tracking.storage`` does from 1,000 rows (the flush): COPY, then one statement
  claiming the keys and inserting the new events;
- ``plain copy+on conflict``: the previous writer on the previous table (unpartitioned, ``UNIQUE
  (event_id)``): COPY into a temporary table, ``INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from tracking.models import Event  # noqa: E402
from tracking.storage import ROW_FIELDS, db_params, events_insert  # noqa: E402

PLAIN = "bench_event_plain"
COLUMNS = ", ".join(ROW_FIELDS)


def rows(n: int) -> list[tuple[Any, ...]]:
    now_us = int(datetime.now(tz=UTC).timestamp() * 1_000_000)
    return [
        (str(uuid.uuid4()), "page_view", f"user-{i % 5000}", f"s-{i % 9000}", now_us // 1000 - i, now_us,
         f"https://example.org/a/{i % 800}", "https://example.org/", f"item-{i % 800}", '["news","sports"]', None,
         '{"w":1280}', False, "203.0.113.0", "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0", "tracker")
        for i in range(n)
    ]


def _raw() -> Any:
    connection.ensure_connection()
    return connection.connection.cursor()


def _claim(cursor: Any, batch: Sequence[tuple[Any, ...]]) -> set[str]:
    ids = sorted(str(values[0]) for values in batch)
    cursor.execute(
        "INSERT INTO tracking_event_key (event_id) VALUES " + ", ".join(["(%s::uuid)"] * len(ids))
        + " ON CONFLICT DO NOTHING RETURNING event_id",
        ids,
    )
    return {str(value[0]) for value in cursor.fetchall()}


def _insert(cursor: Any, batch: Sequence[tuple[Any, ...]], table: str = "tracking_event") -> None:
    one = "(" + ", ".join(["%s"] * len(ROW_FIELDS)) + ")"
    for start in range(0, len(batch), 500):
        chunk = batch[start : start + 500]
        flat = [value for values in chunk for value in values]
        cursor.execute(f"INSERT INTO {table} ({COLUMNS}) VALUES " + ", ".join([one] * len(chunk)), flat)


def _load(cursor: Any, batch: Sequence[tuple[Any, ...]]) -> None:
    cursor.execute(f"CREATE TEMPORARY TABLE bench_rows ON COMMIT DROP AS SELECT {COLUMNS} FROM tracking_event LIMIT 0")
    with cursor.copy(f"COPY bench_rows ({COLUMNS}) FROM STDIN") as copy:
        for values in batch:
            copy.write_row(values)


def bulk_create(batch: Sequence[tuple[Any, ...]], *, keys: bool) -> None:
    cursor = _raw()
    fresh = batch
    if keys:
        claimed = _claim(cursor, batch)
        fresh = [values for values in batch if str(values[0]) in claimed]
    Event.objects.bulk_create([Event(**dict(zip(ROW_FIELDS, values, strict=True))) for values in fresh],
                              batch_size=500)


def insert(batch: Sequence[tuple[Any, ...]], *, keys: bool) -> None:
    if keys:
        cursor = _raw()
        claimed = _claim(cursor, batch)
        _insert(cursor, [values for values in batch if str(values[0]) in claimed])
    else:
        _insert(_raw(), batch)


def copy_direct(batch: Sequence[tuple[Any, ...]]) -> None:
    cursor = _raw()
    with cursor.copy(f"COPY tracking_event ({COLUMNS}) FROM STDIN") as copy:
        for values in batch:
            copy.write_row(values)


def copy_select(batch: Sequence[tuple[Any, ...]]) -> None:
    cursor = _raw()
    _load(cursor, batch)
    cursor.execute(f"INSERT INTO tracking_event ({COLUMNS}) SELECT {COLUMNS} FROM bench_rows")


def copy_keys(batch: Sequence[tuple[Any, ...]]) -> None:
    # the flush's own writer: ``events_insert`` takes the COPY path from 1,000 rows
    events_insert(batch, params=batch)


def plain_copy_on_conflict(batch: Sequence[tuple[Any, ...]]) -> None:
    cursor = _raw()
    _load(cursor, batch)
    cursor.execute(
        f"INSERT INTO {PLAIN} ({COLUMNS}) SELECT {COLUMNS} FROM bench_rows ON CONFLICT (event_id) DO NOTHING "
        "RETURNING event_id"
    )
    cursor.fetchall()


METHODS: dict[str, Callable[[Sequence[tuple[Any, ...]]], None]] = {
    "bulk_create": lambda batch: bulk_create(batch, keys=False),
    "bulk_create+keys": lambda batch: bulk_create(batch, keys=True),
    "insert": lambda batch: insert(batch, keys=False),
    "insert+keys": lambda batch: insert(batch, keys=True),
    "copy": copy_direct,
    "copy+select": copy_select,
    "copy+keys": copy_keys,
    "plain copy+on conflict": plain_copy_on_conflict,
}


def reset() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE tracking_event, {PLAIN}")  # the key table with it (trigger)


def measure(method: Callable[[Sequence[tuple[Any, ...]]], None], data: list[tuple[Any, ...]], batch: int) -> float:
    params = db_params(data)  # converted before the clock starts, as the flush converts while reading
    reset()
    started = time.perf_counter()
    for start in range(0, len(params), batch):
        with transaction.atomic():
            method(params[start : start + batch])
    elapsed = time.perf_counter() - started
    return len(params) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated method names")
    args = parser.parse_args()
    if settings.DEBUG:  # Django's debug cursor would format every ORM query: not what production pays
        raise SystemExit("run with DJANGO_DEBUG=0 (and DJANGO_SECRET_KEY)")
    if connection.vendor != "postgresql":
        raise SystemExit("DATABASE_URL must name a (scratch) PostgreSQL database")
    call_command("migrate", verbosity=0)
    call_command("event_partitions", stdout=open(os.devnull, "w"))
    with connection.cursor() as cursor:
        # the previous table: unpartitioned, the unique index on event_id and the same other indexes
        cursor.execute(f"DROP TABLE IF EXISTS {PLAIN}")
        cursor.execute(f"CREATE TABLE {PLAIN} (LIKE tracking_event INCLUDING DEFAULTS)")
        cursor.execute(f"ALTER TABLE {PLAIN} ADD PRIMARY KEY (id), ADD UNIQUE (event_id)")
        for columns in ("user_id, ts", "ts", "received_at"):
            cursor.execute(f"CREATE INDEX ON {PLAIN} ({columns})")
    methods = {name: fn for name, fn in METHODS.items() if not args.only or name in args.only.split(",")}
    results: dict[str, list[float]] = {name: [] for name in methods}
    for _round in range(args.rounds):
        for name, method in methods.items():
            results[name].append(measure(method, rows(args.rows), args.batch))
    reset()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {PLAIN}")
    medians = {name: round(statistics.median(values)) for name, values in results.items()}
    # on a shared machine the best round is the one least disturbed by other processes
    best = {name: round(max(values)) for name, values in results.items()}
    print(json.dumps({"rows": args.rows, "batch": args.batch, "rounds": args.rounds, "rows_per_s": medians,
                      "best": best, "all": {name: [round(v) for v in values] for name, values in results.items()}}))
    print("\n| method | rows/s, median | best round |\n|---|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value:,} | {best[name]:,} |")


if __name__ == "__main__":
    main()
