"""PostgreSQL only: ``tracking_event`` becomes a table range-partitioned by day on ``received_at``.

SQLite (the embedded default) keeps its plain table: this migration does nothing there. Django's model
state is unchanged (``Event.event_id`` stays ``unique=True``, which is what SQLite has); on PostgreSQL
the uniqueness of ``event_id`` is kept by ``tracking_event_key`` instead (a unique index on a
partitioned table must include the partition key), see ``tracking.partitions``.

Forward, on an existing table with rows: the old table is renamed aside, the partitioned one created
with the same columns, a DEFAULT partition, one partition per day that has rows and those of the days
ahead; the rows are copied (ids kept, the id sequence continues after the largest), one key per event
written, the indexes built after the load, and the old table dropped. In one transaction: a failure
leaves the old table as it was. Backward: the plain table again, rows kept.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import migrations

COLUMNS = (
    "id, event_id, type, user_id, session_id, ts, received_at, url, referrer, item_id, categories, ad, "
    "properties, is_bot, ip, user_agent, source"
)
# The columns as migration 0001 made them, but for ``id``'s default and the constraints.
COLUMN_DDL = """
    event_id uuid NOT NULL,
    type varchar(16) NOT NULL,
    user_id varchar(64) NOT NULL,
    session_id varchar(64) NOT NULL,
    ts timestamp with time zone NOT NULL,
    received_at timestamp with time zone NOT NULL,
    url varchar(2048) NOT NULL,
    referrer varchar(2048) NOT NULL,
    item_id varchar(128) NOT NULL,
    categories jsonb NOT NULL,
    ad jsonb,
    properties jsonb NOT NULL,
    is_bot boolean NOT NULL,
    ip varchar(64) NOT NULL,
    user_agent varchar(512) NOT NULL,
    source varchar(16) NOT NULL
"""
INDEXES = (
    "CREATE INDEX event_user_ts ON tracking_event (user_id, ts)",
    "CREATE INDEX event_ts ON tracking_event (ts)",
    "CREATE INDEX event_received ON tracking_event (received_at)",
)
# Deleting event rows (a visitor's deletion, a row purge) or truncating the table (a test flush) frees
# their keys, so that such an event can be stored again, as with SQLite's unique index. Statement-level
# with a transition table: one set-based DELETE per statement, not a trigger call per row.
TRIGGERS = """
CREATE FUNCTION tracking_event_key_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM tracking_event_key k USING released r WHERE k.event_id = r.event_id;
  RETURN NULL;
END $$;
CREATE FUNCTION tracking_event_key_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE tracking_event_key;
  RETURN NULL;
END $$;
CREATE TRIGGER tracking_event_key_release AFTER DELETE ON tracking_event
  REFERENCING OLD TABLE AS released FOR EACH STATEMENT EXECUTE FUNCTION tracking_event_key_release();
CREATE TRIGGER tracking_event_key_truncate AFTER TRUNCATE ON tracking_event
  FOR EACH STATEMENT EXECUTE FUNCTION tracking_event_key_truncate();
"""


def partition(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    from tracking.partitions import day_partitions_create

    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'tracking_event'::regclass")
        if cursor.fetchone()[0] == "p":  # already partitioned
            return
        cursor.execute("ALTER TABLE tracking_event RENAME TO tracking_event_unpartitioned")
        # the old table's constraint and index names are taken back by the new table
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'tracking_event_unpartitioned'::regclass "
            "AND contype IN ('p', 'u')"
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'ALTER TABLE tracking_event_unpartitioned RENAME CONSTRAINT "{name}" TO "{name}_old"')
        for index in ("event_user_ts", "event_ts", "event_received"):
            cursor.execute(f"ALTER INDEX IF EXISTS {index} RENAME TO {index}_old")
        cursor.execute("SELECT coalesce(max(id), 0) FROM tracking_event_unpartitioned")
        last_id = int(cursor.fetchone()[0])
        # identity columns cannot be partitioned before PostgreSQL 17: a sequence owned by the column
        # (what Django's sequence reset finds with pg_get_serial_sequence)
        cursor.execute("ALTER TABLE tracking_event_unpartitioned ALTER COLUMN id DROP IDENTITY IF EXISTS")
        cursor.execute("CREATE SEQUENCE tracking_event_id_seq")
        cursor.execute(
            "CREATE TABLE tracking_event (id bigint NOT NULL DEFAULT nextval('tracking_event_id_seq'), "
            f"{COLUMN_DDL}) PARTITION BY RANGE (received_at)"
        )
        cursor.execute("ALTER SEQUENCE tracking_event_id_seq OWNED BY tracking_event.id")
        if last_id:
            cursor.execute("SELECT setval('tracking_event_id_seq', %s)", [last_id])
        cursor.execute("CREATE TABLE tracking_event_default PARTITION OF tracking_event DEFAULT")
        cursor.execute(
            "SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date FROM tracking_event_unpartitioned"
        )
        days = [row[0] for row in cursor.fetchall()]
        today = datetime.now(tz=UTC).date()
        days.extend(today + timedelta(days=offset) for offset in range(8))
        day_partitions_create(cursor, days)
        cursor.execute(f"INSERT INTO tracking_event ({COLUMNS}) SELECT {COLUMNS} FROM tracking_event_unpartitioned")
        cursor.execute("CREATE TABLE tracking_event_key (event_id uuid PRIMARY KEY)")
        cursor.execute("INSERT INTO tracking_event_key (event_id) SELECT event_id FROM tracking_event_unpartitioned")
        cursor.execute("DROP TABLE tracking_event_unpartitioned")
        # built once after the load; every partition created later gets them from the table
        cursor.execute("ALTER TABLE tracking_event ADD CONSTRAINT tracking_event_pkey PRIMARY KEY (id, received_at)")
        for sql in INDEXES:
            cursor.execute(sql)
        # lookups by event id (the flush's reclaim check, the feature catch-up); not unique: see above
        cursor.execute("CREATE INDEX event_event_id ON tracking_event (event_id)")
        cursor.execute(TRIGGERS)
        cursor.execute("ANALYZE tracking_event")


def unpartition(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'tracking_event'::regclass")
        if cursor.fetchone()[0] != "p":
            return
        cursor.execute("SELECT coalesce(max(id), 0) FROM tracking_event")
        last_id = int(cursor.fetchone()[0])
        cursor.execute(
            "CREATE TABLE tracking_event_flat (id bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY, "
            f"{COLUMN_DDL})"
        )
        cursor.execute(f"INSERT INTO tracking_event_flat ({COLUMNS}) SELECT {COLUMNS} FROM tracking_event")
        cursor.execute("DROP TABLE tracking_event")  # its partitions, sequence and triggers with it
        cursor.execute("DROP TABLE tracking_event_key")
        cursor.execute("DROP FUNCTION tracking_event_key_release(), tracking_event_key_truncate()")
        cursor.execute("ALTER TABLE tracking_event_flat RENAME TO tracking_event")
        cursor.execute("ALTER SEQUENCE tracking_event_flat_id_seq RENAME TO tracking_event_id_seq")
        if last_id:
            cursor.execute("SELECT setval('tracking_event_id_seq', %s)", [last_id])
        cursor.execute("ALTER TABLE tracking_event ADD CONSTRAINT tracking_event_pkey PRIMARY KEY (id)")
        cursor.execute("ALTER TABLE tracking_event ADD CONSTRAINT tracking_event_event_id_key UNIQUE (event_id)")
        for sql in INDEXES:
            cursor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("tracking", "0003_feature_backlog")]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
