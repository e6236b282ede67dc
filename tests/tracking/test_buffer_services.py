"""Services mode: the Redis Stream buffer, its flush, write-through when Redis is gone, and the ledger.

Run against the real PostgreSQL and Redis (``make test-services`` / ``.ci/run``).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import OperationalError
from django.test import Client
from tracking_factories import BOT_UA, make_event, post_collect

from tracking.buffer import stream_length
from tracking.models import Event
from tracking.selectors import ledger_get

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.requires_redis, pytest.mark.requires_postgres]


def flush(**options: Any) -> None:
    call_command("flush_events", stdout=open(os.devnull, "w"), **options)


@pytest.mark.django_db
def test_collected_events_are_buffered_then_flushed_once(
    client: Client, redis_client: Any, observed: Any
) -> None:
    repeated = make_event()
    first = post_collect(client, [repeated, make_event(), make_event(type="bad")]).json()
    second = post_collect(client, [repeated, make_event()], ua=BOT_UA).json()
    assert (first["accepted"], first["duplicate"], len(first["rejected"])) == (2, 0, 1)
    assert (second["accepted"], second["duplicate"]) == (1, 1)
    # features update at once, before the flush; the bot's event does not reach inference
    assert len(observed.records) == 2
    assert not Event.objects.exists()
    ledger = ledger_get()
    assert (ledger["received"], ledger["buffered"], ledger["unaccounted"]) == (5, 3, 0)

    flush()
    assert Event.objects.count() == 3
    assert Event.objects.filter(event_id=repeated["event_id"]).count() == 1
    assert Event.objects.filter(is_bot=True).count() == 1
    ledger = ledger_get()
    assert (ledger["stored"], ledger["buffered"], ledger["duplicates"], ledger["unaccounted"]) == (3, 0, 1, 0)


@pytest.mark.django_db
def test_copy_the_dedupe_key_missed_is_counted_as_duplicate_at_flush(
    client: Client, redis_client: Any
) -> None:
    event = make_event()
    post_collect(client, [event])
    flush()
    from tracking.buffer import dedupe_key

    redis_client.delete(dedupe_key(event["event_id"]))
    assert post_collect(client, [event]).json()["accepted"] == 1  # Redis no longer remembers it
    flush()
    assert Event.objects.count() == 1
    ledger = ledger_get()
    assert (ledger["duplicates"], ledger["unaccounted"]) == (1, 0)


@pytest.mark.django_db
def test_redis_gone_during_collection_writes_through_to_the_database(
    client: Client, redis_client: Any, private_redis: str, settings: Any
) -> None:
    settings.TRACKING = {**settings.TRACKING, "REDIS_URL": private_redis}
    buffered = make_event()
    assert post_collect(client, [buffered]).json()["accepted"] == 1
    redis.Redis.from_url(private_redis).shutdown(nosave=True)

    event = make_event()
    response = post_collect(client, [event, event])
    assert response.status_code == 202
    assert (response.json()["accepted"], response.json()["duplicate"]) == (1, 1)
    assert Event.objects.filter(event_id=event["event_id"]).count() == 1  # stored at once, not buffered
    retry = post_collect(client, [event]).json()
    assert (retry["accepted"], retry["duplicate"]) == (0, 1)


@pytest.mark.django_db
def test_redis_and_database_both_gone_answers_503_so_the_tracker_retries(
    client: Client, redis_client: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracking import services

    port = 1  # nothing listens there
    settings.TRACKING = {**settings.TRACKING, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}

    def database_down(rows: Any) -> set[str]:
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "events_insert", database_down)
    response = post_collect(client, [make_event()])
    assert response.status_code == 503
    assert not Event.objects.exists()


KILLED_FLUSH = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
django.setup()
from tracking.buffer import stream_flush
stream_flush(batch_size=4, after_insert=lambda entries: os._exit(3))
"""


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    db = django_settings.DATABASES["default"]
    env["DATABASE_URL"] = (
        f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )
    env.update(extra)
    return env


@pytest.mark.django_db(transaction=True)
def test_flush_killed_after_insert_before_ack_loses_and_duplicates_nothing(
    client: Client, redis_client: Any, settings: Any
) -> None:
    # A stream and ledger of this test's own: a late beacon from an earlier browser test's page
    # cannot land in them and blur the exact counts below.
    # One shard (on a Redis Cluster too), so that the batches below are the stream's, in order.
    _own_stream(settings)
    conf = settings.TRACKING
    events = [make_event() for _ in range(10)]
    post_collect(client, events)
    # a real process, killed by the fault injected from outside: after its first batch committed, before the ack
    crashed = subprocess.run(
        [sys.executable, "-c", KILLED_FLUSH],
        cwd=ROOT,
        env=_subprocess_env(
            TRACKING_STREAM_KEY=conf["STREAM_KEY"],
            TRACKING_LEDGER_KEY=conf["LEDGER_KEY"],
            TRACKING_STREAM_SHARDS="1",
        ),
        capture_output=True,
        timeout=120,
    )
    assert crashed.returncode == 3, crashed.stderr.decode()[-2000:]
    assert Event.objects.count() == 4  # the first batch committed ...
    assert stream_length() == 10  # ... but was never acknowledged

    # the crashed flush's process is gone: its batch is taken over at once, not after the 60 s idle time
    out = io.StringIO()
    call_command("flush_events", stdout=out)
    assert "10 entries in 2 batches, 6 inserted" in out.getvalue()
    assert "4 reclaimed (4 from flushes that died)" in out.getvalue()
    assert Event.objects.count() == 10
    assert sorted(str(e) for e in Event.objects.values_list("event_id", flat=True)) == sorted(
        e["event_id"] for e in events
    )
    ledger = ledger_get()
    assert (ledger["stored"], ledger["buffered"], ledger["duplicates"], ledger["unaccounted"]) == (
        10,
        0,
        0,
        0,
    )


@pytest.mark.django_db(transaction=True)
def test_celery_worker_flush_moves_collected_events_into_the_table(
    client: Client, redis_client: Any, celery_worker_process: Any
) -> None:
    from adsite.celery import app
    from tracking.tasks import flush_events

    # tasks the earlier tests enqueued (visitors' answer recomputes) with no worker to take them: on one
    # Redis the suite's flushes empty the broker's queue, a RabbitMQ broker (scale-out) keeps them, and the
    # one worker would take them all before this flush
    app.control.purge()
    events = [make_event() for _ in range(5)]
    assert post_collect(client, events).json()["accepted"] == 5
    flush_events.delay()
    deadline = time.monotonic() + 60
    while Event.objects.count() < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Event.objects.count() == 5
    assert ledger_get()["unaccounted"] == 0


@pytest.mark.django_db
def test_deleting_a_visitor_removes_their_events_still_in_the_buffer(client: Client, redis_client: Any, observed: Any) -> None:
    """Events waiting in the Redis buffer when the visitor is deleted never come back with the next
    flush; other visitors' events and the leaver's own later events are stored; the ledger reconciles."""
    from tracking.privacy import user_data_delete

    post_collect(client, [make_event(user_id="leaver"), make_event(user_id="leaver")])
    post_collect(Client(), [make_event(user_id="stayer")])
    assert stream_length() == 3
    result = user_data_delete(user_id="leaver")
    assert result.events == 2 and stream_length() == 1
    post_collect(client, [make_event(user_id="leaver")])  # they come back afterwards: a new visit
    flush()
    assert sorted(Event.objects.values_list("user_id", flat=True)) == ["leaver", "stayer"]
    ledger = ledger_get()
    assert (ledger["stored"], ledger["deleted"], ledger["unaccounted"]) == (2, 2, 0)


@pytest.mark.django_db
def test_a_flush_that_read_a_deleted_visitors_events_drops_them(client: Client, redis_client: Any) -> None:
    """The race: a flush read the entries just before the deletion ran; its insert must not bring them back."""
    import json as _json

    from tracking.buffer import shard_of, shards, stream_forget
    from tracking.buffer.flush import _batch_store

    event = make_event(user_id="leaver")
    post_collect(client, [event])
    entries = redis_client.xrange(shards()[shard_of(event["event_id"], len(shards()))].stream)
    received_us = _json.loads(entries[0][1][b"e"])[5]
    stream_forget("leaver", now_us=received_us + 1)
    _batch_store(list(entries), reclaimed=False, client=redis_client)
    assert not Event.objects.filter(user_id="leaver").exists()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _own_stream(settings: Any) -> dict[str, str]:
    """A buffer of the test's own with one shard: a late beacon from an earlier test cannot land in it and
    blur the exact counts, and the test reads and writes its one stream. ``STREAM_KEY``/``LEDGER_KEY``:
    the names the buffer gives that shard (on a Redis Cluster, names in one hash slot)."""
    from tracking.buffer import shards

    base = {"STREAM_KEY": f"test:events:{uuid.uuid4().hex}", "LEDGER_KEY": f"test:ledger:{uuid.uuid4().hex}"}
    settings.TRACKING = {**settings.TRACKING, **base, "STREAM_SHARDS": 1}
    (shard,) = shards()
    return {"STREAM_KEY": shard.stream, "LEDGER_KEY": shard.ledger}


@pytest.mark.django_db
def test_entries_held_by_a_dead_flush_are_taken_over_at_once_and_a_live_ones_reported(
    client: Client, redis_client: Any, settings: Any
) -> None:
    keys = _own_stream(settings)
    assert post_collect(client, [make_event() for _ in range(6)]).json()["accepted"] == 6
    stream = keys["STREAM_KEY"]
    redis_client.xgroup_create(stream, "flush", id="0")
    host = socket.gethostname()
    dead, alive = f"{host}-{_dead_pid()}", f"{host}-{os.getppid()}"
    redis_client.xreadgroup("flush", dead, {stream: ">"}, count=4)  # a flush that died holding 4 entries
    redis_client.xreadgroup("flush", alive, {stream: ">"}, count=2)  # one still working on 2

    out = io.StringIO()
    call_command("flush_events", stdout=out)  # the default idle time (60 s) has not passed
    text = out.getvalue()
    assert "4 entries in 1 batches, 4 inserted" in text
    assert "(4 from flushes that died)" in text
    assert f"2 entries still held by {alive} (alive" in text
    assert Event.objects.count() == 4
    consumers = {c["name"].decode() for c in redis_client.xinfo_consumers(stream, "flush")}
    assert dead not in consumers  # the dead consumer, holding nothing now, left the group
    assert ledger_get()["unaccounted"] == 0

    call_command("flush_events", stdout=io.StringIO(), reclaim_idle_ms=0)
    assert Event.objects.count() == 6


@pytest.mark.django_db
def test_entries_the_database_refuses_are_parked_in_quarantine_not_retried_forever(
    client: Client, redis_client: Any, settings: Any
) -> None:
    from tracking.buffer import PARKED_REASON
    from tracking.models import QuarantinedEvent

    keys = _own_stream(settings)
    good = [make_event() for _ in range(3)]
    assert post_collect(client, good).json()["accepted"] == 3
    # what an older version or a bad hand could leave in the buffer: not a row, and a row whose text
    # PostgreSQL refuses (a NUL character), each counted as received like any buffered event
    poison_row = ["00000000-0000-4000-8000-000000000001", "page_view", "v", "s", int(time.time() * 1000),
                  int(time.time() * 1_000_000), "https://example.org/\x00", "", "", "[]", None, "{}", False, "",
                  "", "tracker"]
    redis_client.xadd(keys["STREAM_KEY"], {"e": b"not json"})
    redis_client.xadd(keys["STREAM_KEY"], {"e": json.dumps(poison_row)})
    redis_client.hincrby(keys["LEDGER_KEY"], "received", 2)

    out = io.StringIO()
    call_command("flush_events", stdout=out)
    assert "2 parked as unstorable" in out.getvalue()
    assert Event.objects.count() == 3
    parked = QuarantinedEvent.objects.filter(reason=PARKED_REASON)
    assert parked.count() == 2
    replayable = parked.get(user_id="v")
    assert json.loads(replayable.payload)["event_id"] == poison_row[0]
    assert stream_length() == 0  # nothing left to block the next flush
    ledger = ledger_get()
    assert (ledger["quarantined"][PARKED_REASON], ledger["unaccounted"]) == (2, 0)


@pytest.mark.django_db
def test_entries_left_by_a_failed_flush_in_this_same_process_are_flushed_by_its_next_flush(
    client: Client, redis_client: Any, settings: Any
) -> None:
    """Redis or the database went away mid-batch: the process lives on and holds the batch; its next
    flush takes it first instead of leaving it for the idle reclaim."""
    from tracking.buffer import consumer_name

    keys = _own_stream(settings)
    assert post_collect(client, [make_event() for _ in range(5)]).json()["accepted"] == 5
    redis_client.xgroup_create(keys["STREAM_KEY"], "flush", id="0")
    redis_client.xreadgroup("flush", consumer_name(), {keys["STREAM_KEY"]: ">"}, count=3)
    out = io.StringIO()
    call_command("flush_events", stdout=out)
    assert "5 entries in 2 batches, 5 inserted" in out.getvalue()
    assert "3 reclaimed" in out.getvalue()
    assert stream_length() == 0
