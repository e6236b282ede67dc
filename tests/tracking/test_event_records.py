"""tracking.api.event_records_iter: what training replays -- time order, no bots, bounded chunks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from tracking_factories import BOT_UA, make_event, post_collect

from tracking.api import event_records_iter

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("embedded")]

BASE_MS = int(datetime.now(tz=UTC).timestamp() * 1000) - 3_600_000


def test_records_come_in_time_order_in_chunks_without_bots(client: Client) -> None:
    events = [make_event(ts=BASE_MS + offset * 1000, item_id=f"i{offset}") for offset in (5, 1, 3, 3, 2)]
    post_collect(client, events)
    post_collect(client, [make_event(ts=BASE_MS)], ua=BOT_UA)
    chunks = list(event_records_iter(chunk_size=2))
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    records = [record for chunk in chunks for record in chunk]
    assert [record.ts for record in records] == sorted(e["ts"] / 1000 for e in events)
    assert {record.item_id for record in records} == {"i1", "i2", "i3", "i5"}


def test_records_are_limited_to_since_until(client: Client) -> None:
    post_collect(client, [make_event(ts=BASE_MS + offset * 1000) for offset in range(5)])
    since = datetime.fromtimestamp((BASE_MS + 1000) / 1000, tz=UTC)
    until = datetime.fromtimestamp((BASE_MS + 4000) / 1000, tz=UTC)
    records = [record for chunk in event_records_iter(since=since, until=until) for record in chunk]
    assert [record.ts for record in records] == [(BASE_MS + k * 1000) / 1000 for k in (1, 2, 3)]
