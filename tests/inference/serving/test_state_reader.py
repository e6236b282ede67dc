"""The serving read-out follows the process's feature store, also across a reset."""

from __future__ import annotations

from inference.events import EventRecord
from inference.store import feature_store, feature_store_reset, serving_state_reader


def _view(user_id: str, ts: float) -> EventRecord:
    return EventRecord(user_id=user_id, ts=ts, type="page_view", categories=("travel",), item_id="a1")


def test_a_reader_made_before_a_reset_reads_the_store_built_after_it(settings):
    settings.INFERENCE = {**settings.INFERENCE, "STORE": "memory", "STORE_REBUILD_ON_START": False}
    feature_store_reset()
    read = serving_state_reader()  # as a long-lived predictor holds it
    feature_store().observe([_view("before", 1.7e9)])
    assert read("before")[0] is not None

    feature_store_reset()  # a new store: what the process now writes goes there
    feature_store().observe([_view("after", 1.7e9 + 60)])
    user, _ = read("after")
    assert user is not None and user.counts == {"travel": 1.0}
    assert read("before")[0] is None  # the old store's users are gone with it
    feature_store_reset()
