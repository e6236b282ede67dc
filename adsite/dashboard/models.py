"""Dashboard tables: the staff audit trail and the time-bucketed rollups the overview reads.

The overview never recomputes from raw tables on a page view. Two rollups feed it:

- ``MetricSnapshot``: the cumulative Prometheus series the serving path records (prediction counts,
  fallbacks by reason, latency histograms, breaker states, ...) plus tracking's ledger counters,
  copied every ``SNAPSHOT_SECONDS``; rates and percentiles come from the difference of two snapshots.
- ``TrafficMinute``: per-minute counts from tracking's tables (events by type, bots, quarantined by
  reason), recounted for the trailing minutes so late flushes are caught, then left alone.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One state-changing staff action: who did what to which target, when, with what outcome."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # kept beside the FK so the trail still says who it was after the account is deleted
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict)
    ok = models.BooleanField(default=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.action} {self.target}"


class MetricSnapshot(models.Model):
    """Cumulative metric values of one source (a process, or all workers when multiprocess) at ``at``."""

    at = models.DateTimeField()
    # "multiprocess:<dir>" when PROMETHEUS_MULTIPROC_DIR aggregates every worker, else "<host>:<pid>":
    # differences are only taken between snapshots of the same source (counters restart with a process)
    source = models.CharField(max_length=128)
    values = models.JSONField(default=dict)

    class Meta:
        indexes = [
            models.Index(fields=["at"], name="dash_snapshot_at"),
            models.Index(fields=["source", "at"], name="dash_snapshot_source_at"),
        ]
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"snapshot {self.source} at {self.at:%Y-%m-%d %H:%M:%S}"


class TrafficMinute(models.Model):
    """A per-minute count: ``metric`` (events, bots, quarantined) split by ``label`` (type, reason)."""

    minute = models.DateTimeField()
    metric = models.CharField(max_length=32)
    label = models.CharField(max_length=64, blank=True)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["minute", "metric", "label"], name="dash_traffic_minute_unique")
        ]
        indexes = [models.Index(fields=["metric", "minute"], name="dash_traffic_metric_minute")]

    def __str__(self) -> str:
        return f"{self.metric}/{self.label} {self.minute:%Y-%m-%d %H:%M}: {self.count}"


class AnalyticsSession(models.Model):
    """One visit, rolled up from the events table by EVENT time (``ts``), so imported history lands in
    the days it happened. A visit is the events of one ``session_id``, or, without one (imported
    files), of one visitor with no gap over 30 minutes; it is cut at midnight UTC (a day is recounted
    alone). Bots are left out. Unique visitors of any range are ``COUNT(DISTINCT user_id)`` here:
    exact, and a visit row stands for many events."""

    day = models.DateField()
    user_id = models.CharField(max_length=64)
    session_key = models.CharField(max_length=64)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    pageviews = models.PositiveIntegerField(default=0)
    events = models.PositiveIntegerField(default=0)
    # the tracker's page_ping engaged_ms (the largest per page, summed); without pings (imported
    # visits) the time from the first to the last event
    engaged_seconds = models.FloatField(default=0.0)
    # one page view and under 10 engaged seconds
    bounced = models.BooleanField(default=False)
    entry_page = models.CharField(max_length=512, blank=True, default="")
    exit_page = models.CharField(max_length=512, blank=True, default="")
    referrer_host = models.CharField(max_length=200, blank=True, default="")
    utm_source = models.CharField(max_length=100, blank=True, default="")
    utm_medium = models.CharField(max_length=100, blank=True, default="")
    utm_campaign = models.CharField(max_length=100, blank=True, default="")
    device = models.CharField(max_length=16, blank=True, default="")
    browser = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["day"], name="dash_session_day"),
            models.Index(fields=["started_at"], name="dash_session_started"),
            models.Index(fields=["user_id", "started_at"], name="dash_session_user"),
        ]

    def __str__(self) -> str:
        return f"visit {self.user_id} {self.started_at:%Y-%m-%d %H:%M}"


class AnalyticsHour(models.Model):
    """Counts per hour of EVENT time: ``dimension`` ``type`` (events by type), ``page`` (page views by
    path), ``category`` (page views by category), ``ad_impression``/``ad_click`` by campaign id."""

    hour = models.DateTimeField()
    dimension = models.CharField(max_length=16)
    key = models.CharField(max_length=512)
    count = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["dimension", "hour"], name="dash_hour_dimension")]

    def __str__(self) -> str:
        return f"{self.dimension}/{self.key} {self.hour:%Y-%m-%d %H}: {self.count}"


class AnalyticsDay(models.Model):
    """One UTC day's visits summed per row of a report table, so a range of months reads a row per day
    and key instead of every visit. ``dimension`` ``all`` (key "": the day's totals), ``entry_page``,
    ``exit_page``, ``referrer``, ``campaign`` (UTM source, medium and campaign joined by ``\\x1f``),
    ``device``, ``browser``: sessions, bounced sessions, page views, engaged seconds and the day's
    visitors as a set; ``page`` and ``category``: page views only (from the hourly counts).

    ``visitor_set`` holds the sorted 64-bit hashes of the visitor ids of that day and key (8 bytes a
    visitor): the unique visitors of a range are the size of the union of its days' sets, exact unless
    two ids share a hash (about 3 in 100 million that any pair does among a million visitors). Written
    with the day's visits (a day's recount rewrites its rows, so late events are counted in)."""

    day = models.DateField()
    dimension = models.CharField(max_length=16)
    key = models.CharField(max_length=512, blank=True, default="")
    sessions = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    pageviews = models.BigIntegerField(default=0)
    engaged_seconds = models.FloatField(default=0.0)
    visitors = models.PositiveIntegerField(default=0)
    visitor_set = models.BinaryField(default=b"")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "dimension", "key"], name="dash_analytics_day_unique")
        ]
        indexes = [models.Index(fields=["dimension", "day"], name="dash_analytics_day_dimension")]

    def __str__(self) -> str:
        return f"{self.dimension}/{self.key} on {self.day}: {self.sessions} visits"


class RollupMark(models.Model):
    """How far a rollup has read (``received_at`` of the events it has seen), by name."""

    name = models.CharField(max_length=32, primary_key=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"


class AdsDay(models.Model):
    """The ads ledger's running totals of one campaign at the last roll of a UTC day (served,
    viewable, clicks, spend): a day's delivery is its totals minus the previous recorded day's. The
    ledger is global and exact, so these are too (a cleared ledger starts again from zero)."""

    day = models.DateField()
    campaign = models.CharField(max_length=32)
    served = models.BigIntegerField(default=0)
    viewable = models.BigIntegerField(default=0)
    clicks = models.BigIntegerField(default=0)
    spend = models.FloatField(default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "campaign"], name="dash_ads_day_unique")]

    def __str__(self) -> str:
        return f"campaign {self.campaign} on {self.day}: {self.served} served"
