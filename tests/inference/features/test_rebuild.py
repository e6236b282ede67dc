"""Embedded mode survives a restart: the in-process store is rebuilt from the stored events."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest
from django.core.management import call_command
from django.test import override_settings

from inference.events import EventRecord
from inference.store import feature_store, feature_store_reset

T0 = 1_700_000_000.0
STORED = [
    EventRecord("returning", T0 + i, "page_view", ("travel" if i % 3 else "food",), item_id=f"i{i}")
    for i in range(9)
]


def stored_events(**_: object) -> Iterator[list[EventRecord]]:
    yield STORED[:5]
    yield STORED[5:]


@pytest.fixture
def fresh_process_stores(db: None) -> Iterator[None]:
    # db: a rebuild announces itself (``store_rebuild_started``) and the site's tracking app empties its
    # feature backlog table then
    feature_store_reset()
    yield
    feature_store_reset()


def test_a_new_process_rebuilds_its_memory_store_from_the_stored_events(
    fresh_process_stores: None, data_sources: Callable[..., None]
) -> None:
    data_sources(events=stored_events)
    with override_settings(INFERENCE={"STORE": "memory", "STORE_REBUILD_ON_START": True}):
        user = feature_store().read("returning", now=T0 + 60).user
    assert user.counts == {"food": 3.0, "travel": 6.0}
    assert [item.item_id for item in user.recent] == [f"i{i}" for i in range(9)]


def test_features_rebuild_command_replaces_what_the_store_held(
    fresh_process_stores: None, data_sources: Callable[..., None]
) -> None:
    data_sources(events=stored_events)
    with override_settings(INFERENCE={"STORE": "memory"}):
        feature_store().observe([EventRecord("returning", T0, "page_view", ("stale",))])
        call_command("features_rebuild", stdout=io.StringIO())
        assert feature_store().read("returning", now=T0 + 60).user.counts == {"food": 3.0, "travel": 6.0}
