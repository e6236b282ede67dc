"""Privacy operations: the retention purge and the deletion of one visitor's data.

Both remove rows in bounded batches (so a large purge neither locks the events table for long nor
holds everything in memory; on PostgreSQL the purge drops whole day partitions of events instead), count what they removed in the ledger (``deleted`` events, ``deleted_quarantine``
rows) so that ``manage.py ledger`` still reconciles, and, for a visitor, also ask inference to forget
everything derived from that visitor (online features, cached predictions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from inference import api as inference_api
from tracking.buffer import buffer_enabled, stream_forget
from tracking.conf import tracking_settings
from tracking.models import Event, QuarantinedEvent
from tracking.partitions import event_partitions_drop_before, partitioned
from tracking.services import ledger_counter_add
from tracking.signals import visitor_deleted

logger = logging.getLogger(__name__)

DELETE_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class DeletionResult:
    events: int
    quarantined: int


def _delete_in_batches(model: type[Event] | type[QuarantinedEvent], ledger_name: str, **filters: object) -> int:
    total = 0
    while True:
        with transaction.atomic():
            ids = list(model.objects.filter(**filters).values_list("pk", flat=True)[:DELETE_BATCH])
            if not ids:
                return total
            deleted, _ = model.objects.filter(pk__in=ids).delete()
            ledger_counter_add(name=ledger_name, n=deleted)
        total += deleted


def events_purge_expired(
    *, now: datetime | None = None, days: int | None = None, progress: Callable[[int], None] | None = None
) -> DeletionResult:
    """Delete events and quarantined rows received more than ``days`` (default: the retention setting) ago.

    On PostgreSQL events go by whole UTC days: the day partitions older than the cutoff's day are
    dropped (``tracking.partitions``), and rows before that day still in the DEFAULT partition deleted;
    an event is kept at least ``days`` and less than a day longer. Elsewhere rows go by the exact cutoff.
    """
    days = tracking_settings().RETENTION_DAYS if days is None else days
    cutoff = (now or timezone.now()) - timedelta(days=days)
    events, events_cutoff = 0, cutoff
    if partitioned():
        cutoff_day = cutoff.astimezone(UTC).date()
        _dropped, events = event_partitions_drop_before(cutoff_day)
        # only the DEFAULT partition can still hold such rows (the planner prunes the day partitions)
        events_cutoff = datetime(cutoff_day.year, cutoff_day.month, cutoff_day.day, tzinfo=UTC)
    events += _delete_in_batches(Event, "deleted", received_at__lt=events_cutoff)
    if progress:
        progress(events)
    quarantined = _delete_in_batches(QuarantinedEvent, "deleted_quarantine", received_at__lt=cutoff)
    logger.info("tracking.retention_purged", extra={"events": events, "quarantined": quarantined, "days": days})
    return DeletionResult(events=events, quarantined=quarantined)


def user_data_delete(*, user_id: str) -> DeletionResult:
    """Delete everything held about one visitor: events (stored, and still in the Redis buffer),
    quarantine rows, features and derived data (the ads app's hook: clicks, frequency counters)."""
    buffered = 0
    if buffer_enabled():
        # first the buffer (with a tombstone the flush honours), then the table: a flush running
        # meanwhile cannot bring the visitor's events back
        buffered = stream_forget(user_id, now_us=int(timezone.now().timestamp() * 1_000_000))
        if buffered:
            ledger_counter_add(name="deleted", n=buffered)
    events = _delete_in_batches(Event, "deleted", user_id=user_id) + buffered
    quarantined = _delete_in_batches(QuarantinedEvent, "deleted_quarantine", user_id=user_id)
    # Derived state (online features, anything inference keeps per user) goes too. A feature store
    # that is down must not leave the visitor half-deleted silently: the error propagates to the caller.
    inference_api.user_forget(user_id)
    visitor_deleted.send(sender=user_data_delete, user_id=user_id)
    logger.info("tracking.user_deleted", extra={"user_id": user_id, "events": events, "quarantined": quarantined})
    return DeletionResult(events=events, quarantined=quarantined)
