"""PostgreSQL: the events table partitioned by day on ``received_at`` (tracking.partitions, migration 0004).

Rows land in their receive day's partition, dedupe on ``event_id`` holds across partitions (both write
paths, the buffer's flush included), partitions are created ahead and out of the DEFAULT partition,
retention drops whole old partitions and nothing else, and a visitor's deletion still works.
Run against the real PostgreSQL and Redis (``make test-services`` / ``.ci/run``).
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from tracking_factories import make_event, post_collect

from tracking.buffer import dedupe_key
from tracking.models import Event
from tracking.partitions import (
    DEFAULT_PARTITION,
    event_partitions,
    event_partitions_ensure,
    partition_name,
)
from tracking.selectors import ledger_get
from tracking.storage import events_insert, events_insert_count

pytestmark = pytest.mark.requires_postgres

TODAY = datetime.now(tz=UTC).date()


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def row(event_id: str, received: datetime, user_id: str = "u1") -> tuple[object, ...]:
    """The canonical row (tracking.storage.ROW_FIELDS) of an event received at ``received``."""
    ts_ms = int(received.timestamp() * 1000) - 1000
    return (event_id, "page_view", user_id, "", ts_ms, int(received.timestamp() * 1_000_000), "", "", "i1",
            '["news"]', None, "{}", False, "", "", "import")


def store(rows: list[tuple[object, ...]]) -> set[str]:
    with transaction.atomic():
        return events_insert(rows)


def partition_of(event_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM tracking_event WHERE event_id = %s", [event_id])
        found = cursor.fetchall()
    assert len(found) == 1, f"{event_id} stored {len(found)} times"
    return str(found[0][0])


def partition_names() -> set[str]:
    return {part.name for part in event_partitions()}


@pytest.fixture
def own_stream(settings: Any) -> None:
    """A stream and ledger of this test's own, so that its Redis counts never reach another test's ledger."""
    settings.TRACKING = {**settings.TRACKING, "STREAM_KEY": f"test:events:{uuid.uuid4().hex}",
                         "LEDGER_KEY": f"test:ledger:{uuid.uuid4().hex}"}


def flush() -> str:
    out = io.StringIO()
    call_command("flush_events", stdout=out)
    return out.getvalue()


@pytest.mark.requires_redis
@pytest.mark.django_db
def test_a_flush_lands_rows_in_their_receive_days_partition(
    client: Client, redis_client: Any, own_stream: None
) -> None:
    event_partitions_ensure()
    events = [make_event() for _ in range(3)]
    assert post_collect(client, events).json()["accepted"] == 3
    flush()
    for event in events:
        assert partition_of(event["event_id"]) == partition_name(TODAY)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {DEFAULT_PARTITION}")
        assert cursor.fetchone()[0] == 0


@pytest.mark.requires_redis
@pytest.mark.django_db
def test_an_event_replayed_days_later_is_stored_once_and_counted_duplicate(
    client: Client, redis_client: Any, own_stream: None
) -> None:
    event = make_event()
    post_collect(client, [event])
    flush()
    # three days pass: the row now sits in that day's partition, and Redis's dedupe key has expired
    event_partitions_ensure(ahead_days=0, today=TODAY - timedelta(days=3))
    Event.objects.filter(event_id=event["event_id"]).update(received_at=at(TODAY - timedelta(days=3)))
    assert partition_of(event["event_id"]) == partition_name(TODAY - timedelta(days=3))
    redis_client.delete(dedupe_key(event["event_id"]))

    assert post_collect(client, [event]).json()["accepted"] == 1  # Redis no longer remembers it
    flush()
    assert Event.objects.filter(event_id=event["event_id"]).count() == 1
    assert partition_of(event["event_id"]) == partition_name(TODAY - timedelta(days=3))
    ledger = ledger_get()
    assert (ledger["stored"], ledger["duplicates"], ledger["unaccounted"]) == (1, 1, 0)


@pytest.mark.parametrize("size", [3, 1500])  # the multi-row INSERT path, and COPY from 1000 rows
@pytest.mark.django_db
def test_ids_stored_in_an_older_partition_are_skipped_by_both_write_paths(size: int) -> None:
    old_day = TODAY - timedelta(days=5)
    event_partitions_ensure(ahead_days=0, today=old_day)
    ids = [str(uuid.uuid4()) for _ in range(size)]
    assert store([row(i, at(old_day)) for i in ids[: size // 2 + 1]]) == set(ids[: size // 2 + 1])

    # the same ids received again today, mixed with new ones and one new id repeated in the batch
    again = [row(i, at(TODAY)) for i in ids] + [row(ids[-1], at(TODAY))]
    assert store(again) == set(ids[size // 2 + 1 :])
    with transaction.atomic():
        assert events_insert_count(again) == 0
    assert Event.objects.count() == size
    assert {partition_of(i) for i in ids[: size // 2 + 1]} == {partition_name(old_day)}
    assert {partition_of(i) for i in ids[size // 2 + 1 :]} <= {partition_name(TODAY), DEFAULT_PARTITION}


@pytest.mark.django_db
def test_partitions_are_created_ahead_and_a_days_rows_are_moved_out_of_the_default() -> None:
    start = TODAY + timedelta(days=40)  # beyond what the migration and the beat have made
    # a row of a day without a partition is still stored (DEFAULT partition): a write never fails on it
    late = str(uuid.uuid4())
    assert store([row(late, at(start + timedelta(days=1)))]) == {late}
    assert partition_of(late) == DEFAULT_PARTITION

    created = event_partitions_ensure(ahead_days=3, today=start)
    assert created == [partition_name(start + timedelta(days=n)) for n in range(4)]
    assert partition_of(late) == partition_name(start + timedelta(days=1))
    assert store([row(late, at(start + timedelta(days=2)))]) == set()  # its dedupe key moved with it
    assert event_partitions_ensure(ahead_days=3, today=start) == []  # twice: nothing more

    out = io.StringIO()
    call_command("event_partitions", "--ahead", "5", stdout=out)
    assert partition_name(TODAY + timedelta(days=5)) in out.getvalue()
    assert partition_name(TODAY + timedelta(days=5)) in partition_names()


def test_the_beat_schedule_creates_partitions_ahead_and_purges() -> None:
    tasks = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"tracking.partitions_ensure", "tracking.purge_expired"} <= tasks


@pytest.mark.django_db
def test_retention_drops_whole_old_partitions_and_leaves_the_rest() -> None:
    days = {"old": TODAY - timedelta(days=10), "older_edge": TODAY - timedelta(days=6),
            "kept": TODAY - timedelta(days=4), "today": TODAY}
    for day in days.values():
        event_partitions_ensure(ahead_days=0, today=day)
    ids = {name: [str(uuid.uuid4()) for _ in range(4)] for name in days}
    for name, day in days.items():
        store([row(i, at(day, hour=1)) for i in ids[name]])
    deleted_before = ledger_get().get("deleted", 0)

    out = io.StringIO()
    call_command("purge_events", "--days", "5", stdout=out)  # cutoff: 5 days ago, whole days before it go
    assert "purged 8 events" in out.getvalue()
    names = partition_names()
    assert partition_name(days["old"]) not in names
    assert partition_name(days["older_edge"]) not in names
    assert {partition_name(days["kept"]), partition_name(days["today"])} <= names
    stored = set(Event.objects.values_list("event_id", flat=True))
    assert {str(i) for i in stored} == set(ids["kept"] + ids["today"])
    assert ledger_get()["deleted"] == deleted_before + 8
    # the dropped events' dedupe keys went with them: such an event, sent again, is stored again
    assert store([row(ids["old"][0], at(TODAY))]) == {ids["old"][0]}
    assert store([row(ids["kept"][0], at(TODAY))]) == set()


@pytest.mark.django_db
def test_deleting_a_visitor_removes_their_rows_from_every_partition_and_frees_their_ids() -> None:
    from tracking.privacy import user_data_delete

    old_day = TODAY - timedelta(days=2)
    event_partitions_ensure(ahead_days=0, today=old_day)
    gone = [str(uuid.uuid4()), str(uuid.uuid4())]
    kept = str(uuid.uuid4())
    store([row(gone[0], at(old_day), user_id="leaver"), row(gone[1], at(TODAY), user_id="leaver"),
           row(kept, at(TODAY), user_id="stayer")])

    assert user_data_delete(user_id="leaver").events == 2
    assert list(Event.objects.values_list("user_id", flat=True)) == ["stayer"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracking_event_key WHERE event_id = ANY(%s::uuid[])", [gone])
        assert cursor.fetchone()[0] == 0
    assert store([row(kept, at(TODAY))]) == set()


@pytest.mark.django_db(transaction=True)
def test_the_migration_partitions_an_existing_table_and_keeps_its_rows() -> None:
    """0004 applied to a database with rows (as on a site upgraded in place), then reversed and reapplied."""
    from django.db.migrations.executor import MigrationExecutor

    def migrate(target: str) -> None:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("tracking", target)])

    migrate("0003_feature_backlog")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'tracking_event'::regclass")
            assert cursor.fetchone()[0] == "r"
            cursor.execute(
                "INSERT INTO tracking_event (event_id, type, user_id, session_id, ts, received_at, url, referrer, "
                "item_id, categories, ad, properties, is_bot, ip, user_agent, source) "
                "SELECT gen_random_uuid(), 'page_view', 'm' || g, '', now() - g * interval '7 hours', "
                "now() - g * interval '7 hours', '', '', '', '[]', NULL, '{}', false, '', '', 'api' "
                "FROM generate_series(1, 30) g RETURNING event_id::text"
            )
            old_ids = {value for (value,) in cursor.fetchall()}
            cursor.execute("SELECT max(id) FROM tracking_event")
            last_id = cursor.fetchone()[0]
    finally:
        migrate("0004_event_partitions")

    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'tracking_event'::regclass")
        assert cursor.fetchone()[0] == "p"
        cursor.execute("SELECT event_id::text, tableoid::regclass::text, received_at FROM tracking_event")
        moved = cursor.fetchall()
    assert {value[0] for value in moved} == old_ids
    for _event_id, part, received in moved:  # each row in its receive day's partition
        assert part == partition_name(received.astimezone(UTC).date())
    assert partition_name(TODAY + timedelta(days=7)) in partition_names()
    # the old ids are dedupe keys; new rows continue the id sequence
    replay = sorted(old_ids)[0]
    fresh = str(uuid.uuid4())
    assert store([row(replay, at(TODAY)), row(fresh, at(TODAY))]) == {fresh}
    assert Event.objects.get(event_id=fresh).pk > last_id



@pytest.mark.parametrize("size", [3, 1500])
@pytest.mark.django_db(transaction=True)
def test_two_writers_storing_the_same_ids_at_once_store_each_once(size: int) -> None:
    """Two flushes holding copies of the same events (a dedupe key expired, a write-through): the second
    waits for the first's claim and stores none of them, though their receive days, so partitions, differ."""
    import threading

    from django.db import connections

    yesterday = TODAY - timedelta(days=1)
    event_partitions_ensure(ahead_days=1, today=yesterday)
    ids = [str(uuid.uuid4()) for _ in range(size)]
    first_claimed = threading.Event()
    results: dict[str, set[str]] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                results["first"] = events_insert([row(i, at(yesterday)) for i in ids])
                first_claimed.set()
                # uncommitted for a while: the second writer's claim has to wait for this commit
                threading.Event().wait(1.0)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            first_claimed.wait(30)
            with transaction.atomic():
                results["second"] = events_insert([row(i, at(TODAY)) for i in ids])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {"first": set(ids), "second": set()}
    assert Event.objects.count() == size
    assert {partition_of(i) for i in ids} == {partition_name(yesterday)}
