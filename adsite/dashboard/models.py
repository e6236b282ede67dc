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
