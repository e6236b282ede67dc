"""What inference announces to the apps above it, and what it asks of them (they connect receivers in
their own ``apps.py``; inference imports neither app).

- ``store_rebuild_started()``: a full rebuild of the online feature store is about to replay every
  stored event (tracking empties its feature backlog there: the replay applies those events anyway).
- ``stored_events_requested(since, until)``: training and the store rebuild need the stored events;
  the receiver (tracking's, ``tracking.receivers.on_stored_events_requested``) answers an iterable of
  ``list[EventRecord]`` chunks in time order, bots excluded, ``since <= ts < until``.
- ``categories_requested()``: the categories the site defines; the receiver (the content app's,
  ``adsite.content.receivers.on_categories_requested``) answers a sequence of slugs.

``stored_events`` and ``site_categories`` send them and return the one answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.dispatch import Signal

from inference.events import EventRecord

store_rebuild_started = Signal()
stored_events_requested = Signal()
categories_requested = Signal()


def _one_answer(signal: Signal, what: str, **kwargs: Any) -> Any:
    answers = [answer for _, answer in signal.send(sender=None, **kwargs) if answer is not None]
    if len(answers) != 1:
        raise ImproperlyConfigured(
            f"{what}: {len(answers)} receivers answered; exactly one app must connect one (its apps.py)"
        )
    return answers[0]


def stored_events(
    *, since: datetime | None = None, until: datetime | None = None
) -> Iterable[list[EventRecord]]:
    """The stored events, in time order and in chunks, from the app that stores them."""
    result: Iterable[list[EventRecord]] = _one_answer(
        stored_events_requested, "stored_events_requested", since=since, until=until
    )
    return result


def site_categories() -> Sequence[str]:
    """The category slugs the site defines, from the app that defines them."""
    result: Sequence[str] = _one_answer(categories_requested, "categories_requested")
    return result
