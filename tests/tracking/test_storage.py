"""tracking.storage.events_insert / events_insert_count: exact inserted ids or count, duplicates skipped, in one statement or via COPY."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from tracking.models import Event
from tracking.storage import events_insert, events_insert_count

pytestmark = pytest.mark.django_db


def row(event_id: str) -> tuple[object, ...]:
    return (
        event_id,
        "page_view",
        "u1",
        "",
        1_767_225_600_000,
        1_767_225_601_000_000,
        "",
        "",
        "i1",
        '["news"]',
        None,
        "{}",
        False,
        "",
        "",
        "import",
    )


@pytest.mark.parametrize("size", [3, 1500])  # a multi-row INSERT, and PostgreSQL's COPY path from 1000 rows
def test_insert_returns_exactly_the_new_ids_and_skips_duplicates(size: int) -> None:
    ids = [str(uuid.uuid4()) for _ in range(size)]
    with transaction.atomic():
        assert events_insert([row(i) for i in ids[:2]]) == set(ids[:2])
    rows = [row(i) for i in ids] + [row(ids[-1])]  # one repeated inside the batch too
    with transaction.atomic():
        inserted = events_insert(rows)
    assert inserted == set(ids[2:])
    assert Event.objects.count() == size
    stored = Event.objects.get(event_id=ids[0])
    assert stored.categories == ["news"] and stored.ts.timestamp() == 1_767_225_600


@pytest.mark.parametrize("size", [3, 1500])
def test_insert_count_counts_only_the_new_rows(size: int) -> None:
    ids = [str(uuid.uuid4()) for _ in range(size)]
    with transaction.atomic():
        assert events_insert_count([row(i) for i in ids[:2]]) == 2
    rows = [row(i) for i in ids] + [row(ids[-1])]  # one repeated inside the batch too
    with transaction.atomic():
        assert events_insert_count(rows) == size - 2
    assert Event.objects.count() == size
