"""Tracking's receivers of inference's signals (connected in ``TrackingConfig.ready``); each calls one
service."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inference.api import EventRecord


def on_store_rebuild_started(sender: Any, **kwargs: Any) -> None:
    """``inference.api.store_rebuild_started``: the rebuild replays every stored event, so the feature
    backlog (events whose update waits for the catch-up) is emptied first."""
    from tracking.features_backlog import feature_backlog_clear

    feature_backlog_clear()


def on_stored_events_requested(
    sender: Any, *, since: datetime | None = None, until: datetime | None = None, **kwargs: Any
) -> Iterator[list[EventRecord]]:
    """``inference.api.stored_events_requested``: training and the store rebuild read the events table
    (non-bot events in time order, chunks)."""
    from tracking.selectors import event_records_iter

    return event_records_iter(since=since, until=until)
