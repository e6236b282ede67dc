"""Tracking's receivers of inference's signals (connected in ``TrackingConfig.ready``); each calls one
service."""

from __future__ import annotations

from typing import Any


def on_store_rebuild_started(sender: Any, **kwargs: Any) -> None:
    """``inference.api.store_rebuild_started``: the rebuild replays every stored event, so the feature
    backlog (events whose update waits for the catch-up) is emptied first."""
    from tracking.features_backlog import feature_backlog_clear

    feature_backlog_clear()
