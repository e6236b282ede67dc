"""The public face of inference. Nothing else in ``inference`` is imported from outside it.

Returns frozen dataclasses only: no tensor, booster or ORM row crosses this module.

Placeholder stage: the foundation issue wires tracking to ``events_observe``; the features-and-models
and serving issues fill in the feature store, the models and the fallback chain behind these names.
"""

from __future__ import annotations

from collections.abc import Sequence

from inference.events import EventRecord

__all__ = ["EventRecord", "events_observe", "user_forget"]


def events_observe(records: Sequence[EventRecord]) -> None:
    """Update the online features with accepted, non-bot events (called in the collect request)."""
    return None


def user_forget(user_id: str) -> None:
    """Delete everything inference holds about one user (the privacy operation)."""
    return None
