"""Services mode: the Redis Stream buffer, its flush, write-through when Redis is gone, and the ledger.

Run against the real PostgreSQL and Redis (``make test-services`` / ``.ci/run``).
"""

from __future__ import annotations

import os
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
    redis_client.delete(django_settings.TRACKING.get("DEDUPE_PREFIX", "adsite:dedupe:") + event["event_id"])
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
    keys = {"STREAM_KEY": f"test:events:{uuid.uuid4().hex}", "LEDGER_KEY": f"test:ledger:{uuid.uuid4().hex}"}
    settings.TRACKING = {**settings.TRACKING, **keys}
    events = [make_event() for _ in range(10)]
    post_collect(client, events)
    # a real process, killed by the fault injected from outside: after its first batch committed, before the ack
    crashed = subprocess.run(
        [sys.executable, "-c", KILLED_FLUSH],
        cwd=ROOT,
        env=_subprocess_env(
            TRACKING_STREAM_KEY=keys["STREAM_KEY"],
            TRACKING_LEDGER_KEY=keys["LEDGER_KEY"],
        ),
        capture_output=True,
        timeout=120,
    )
    assert crashed.returncode == 3, crashed.stderr.decode()[-2000:]
    assert Event.objects.count() == 4  # the first batch committed ...
    assert stream_length() == 10  # ... but was never acknowledged

    flush(reclaim_idle_ms=0)
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
    from tracking.tasks import flush_events

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

    from tracking.buffer import _batch_store, stream_forget

    post_collect(client, [make_event(user_id="leaver")])
    conf_stream = django_settings.TRACKING["STREAM_KEY"]
    entries = redis_client.xrange(conf_stream)
    received_us = _json.loads(entries[0][1][b"e"])[5]
    stream_forget("leaver", now_us=received_us + 1)
    _batch_store(list(entries), reclaimed=False, client=redis_client)
    assert not Event.objects.filter(user_id="leaver").exists()
