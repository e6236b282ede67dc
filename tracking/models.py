"""Tracking tables: stored events, quarantined input and the ledger counters.

Rows reach ``Event`` only in batches (bulk insert / COPY), never one ``save()`` per event.
"""

from __future__ import annotations

from django.db import models


class EventType(models.TextChoices):
    PAGE_VIEW = "page_view"
    PAGE_PING = "page_ping"
    CLICK = "click"
    AD_IMPRESSION = "ad_impression"
    AD_CLICK = "ad_click"
    CONVERSION = "conversion"


class Event(models.Model):
    """One accepted clickstream event. ``event_id`` is the sender's UUID and the dedupe key.

    On PostgreSQL the table is partitioned by day on ``received_at`` (migration 0004, ``tracking.partitions``)
    and ``event_id``'s uniqueness is kept by ``tracking_event_key`` instead of this unique index, which a
    partitioned table cannot have; the model states SQLite's table, the same columns.
    """

    event_id = models.UUIDField(unique=True)
    type = models.CharField(max_length=16, choices=EventType.choices)
    user_id = models.CharField(max_length=64)
    session_id = models.CharField(max_length=64, blank=True, default="")
    # The sender's clock (may be wrong); received_at is ours and is what retention uses.
    ts = models.DateTimeField()
    received_at = models.DateTimeField()
    url = models.CharField(max_length=2048, blank=True, default="")
    referrer = models.CharField(max_length=2048, blank=True, default="")
    item_id = models.CharField(max_length=128, blank=True, default="")
    categories = models.JSONField(default=list)
    ad = models.JSONField(null=True, blank=True)
    properties = models.JSONField(default=dict)
    # Kept, never dropped: bots are excluded from features and training, not from the record.
    is_bot = models.BooleanField(default=False)
    # Truncated to /24 (IPv4) or /48 (IPv6) before it is stored.
    ip = models.CharField(max_length=64, blank=True, default="")
    user_agent = models.CharField(max_length=512, blank=True, default="")
    # tracker (browser beacon), api (server to server), server (rendered page), import (file)
    source = models.CharField(max_length=16, default="tracker")

    class Meta:
        # Each secondary index costs every insert (the import and /collect write paths), so only those
        # a query needs are kept (``event_id``'s unique index is the dedupe key; on PostgreSQL a plain
        # ``event_event_id`` index and the key table):
        indexes = [
            # a visitor's events newest first (selectors.user_events_recent, the dashboard's visitor
            # page) and the deletion of one visitor's data (privacy.user_data_delete)
            models.Index(fields=["user_id", "ts"], name="event_user_ts"),
            # training and feature rebuilds page through all events in (ts, id) order over a ts window
            # (selectors.event_records_iter); event_user_ts cannot serve a ts range across visitors
            models.Index(fields=["ts"], name="event_ts"),
            # the retention purge (privacy.events_purge_expired: received_at < cutoff) and the
            # dashboard's per-minute traffic counts (selectors.traffic_counts_by_minute: a received_at window)
            models.Index(fields=["received_at"], name="event_received"),
            # (type, received_at) was dropped in 0002: no query filters on type with received_at.
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.user_id} {self.event_id}"


class QuarantinedEvent(models.Model):
    """Input we refused, kept with its reason so that nothing a client sent is lost."""

    received_at = models.DateTimeField()
    reason = models.CharField(max_length=64)
    detail = models.TextField(blank=True, default="")
    # The raw event (or the whole body when it could not be parsed), as text.
    payload = models.TextField(blank=True, default="")
    payload_bytes = models.PositiveIntegerField(default=0)
    batch_index = models.IntegerField(null=True, blank=True)
    user_id = models.CharField(max_length=64, blank=True, default="")
    source = models.CharField(max_length=16, default="tracker")
    user_agent = models.CharField(max_length=512, blank=True, default="")
    ip = models.CharField(max_length=64, blank=True, default="")
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["reason", "received_at"], name="quarantine_reason"),
            models.Index(fields=["received_at"], name="quarantine_received"),
            models.Index(fields=["user_id"], name="quarantine_user"),
        ]

    def __str__(self) -> str:
        return f"{self.reason} at {self.received_at:%Y-%m-%d %H:%M:%S}"


class LedgerCounter(models.Model):
    """Monotonic counters the ledger reconciles (received, duplicates, purged, ...).

    Updated with ``value = value + n`` inside the same transaction as the rows they count.
    """

    name = models.CharField(max_length=64, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class FeatureBacklog(models.Model):
    """An accepted event whose online feature update failed because the feature store was unreachable.

    ``tracking.features_backlog.features_catch_up`` applies it later, once, in event time order, and
    deletes the row in the same transaction. Only the id and time are kept: the event itself is read
    from ``Event`` (so a visitor deleted meanwhile is not fed back into the features).
    """

    event_id = models.UUIDField(primary_key=True)
    # the event's time (the sender's clock): the catch-up applies the backlog in this order
    ts = models.DateTimeField()
    # when the update failed: a row whose event never reaches ``Event`` is dropped after a while
    recorded_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["ts", "event_id"], name="feature_backlog_ts")]

    def __str__(self) -> str:
        return f"backlog {self.event_id} at {self.ts:%Y-%m-%d %H:%M:%S}"
