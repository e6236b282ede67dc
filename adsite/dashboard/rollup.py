"""Rollups of what the serving path already records, so the overview reads small tables only.

``metrics_snapshot_take`` copies the cumulative Prometheus series (the same registry ``/metrics``
exposes: all gunicorn workers when ``PROMETHEUS_MULTIPROC_DIR`` is set, else this process),
tracking's ledger counters and the ads ledger's per-campaign delivery (``ads_campaign_served``,
``ads_spend_total``, ``ads_budget``...: global values, the same whichever process reads them) into
one ``MetricSnapshot`` row. ``traffic_minutes_roll`` recounts the
trailing minutes of tracking's events and quarantine into ``TrafficMinute`` rows (upsert: safe to run
twice, and late flushes within ``RECOUNT_MINUTES`` are caught).

Both run from the Celery beat task ``dashboard.rollup`` (services mode), from the rollup thread of the
web process (embedded mode, ``make run``) and, when the latest snapshot is stale, from a dashboard page
view itself, which leaves the site analytics' recount to the schedule when one runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from adsite.dashboard.conf import dashboard_setting
from adsite.dashboard.models import MetricSnapshot, TrafficMinute
from adsite.dashboard.series import series_key

logger = logging.getLogger(__name__)

# the metric families the overview reads; anything else in the registry is left out of snapshots
PREFIXES = ("inference_", "ads_", "tracking_", "http_")


def snapshot_source() -> str:
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if metrics_dir:
        # one source per server (its own directory): two servers sharing a database never have their
        # counters differenced against each other
        return f"multiprocess:{os.path.abspath(metrics_dir)}"[:128]
    return f"{socket.gethostname()}:{os.getpid()}"


def registry_sample() -> dict[str, float]:
    """Every sample of the families in ``PREFIXES``, keyed ``name{label=value,...}``."""
    from adsite.ops.metrics import metrics_registry

    values: dict[str, float] = {}
    for family in metrics_registry().collect():
        if not family.name.startswith(PREFIXES):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = {k: v for k, v in sample.labels.items() if k != "pid"}
            key = series_key(sample.name, labels)
            # multiprocess gauges without an aggregating mode repeat per pid: keep the largest
            values[key] = max(values.get(key, float("-inf")), float(sample.value))
    return values


def metrics_snapshot_take(*, now: datetime | None = None) -> MetricSnapshot:
    """Store the current cumulative values (Prometheus series and ``ledger:<name>`` counters)."""
    from adsite.ads.metrics import decision_metrics_flush
    from tracking import api as tracking_api

    now = now or timezone.now()
    decision_metrics_flush()  # what this process's decisions added up and had not yet written (embedded mode's roller)
    values = registry_sample()
    try:
        for name, value in tracking_api.ledger_counters().items():
            values[f"ledger:{name}"] = float(value)
    except Exception:  # Redis down: the serving series are still worth keeping
        logger.warning("dashboard.ledger_unavailable", exc_info=True)
    try:
        from adsite.ads import selectors as ads_selectors

        # global per-campaign delivery (the ads ledger is shared by every process)
        delivery = ads_selectors.ads_delivery_counters()
        values.update(delivery)
        from adsite.dashboard.adops import ads_days_record

        ads_days_record(values=delivery, now=now)  # the per-day report's running totals
    except Exception:  # the ads ledger being down must not lose the snapshot
        logger.warning("dashboard.ads_ledger_unavailable", exc_info=True)
    snapshot = MetricSnapshot.objects.create(at=now, source=snapshot_source(), values=values)
    cutoff = now - timedelta(hours=float(dashboard_setting("SNAPSHOT_KEEP_HOURS")))
    MetricSnapshot.objects.filter(at__lt=cutoff).delete()
    return snapshot


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def traffic_minutes_roll(*, now: datetime | None = None) -> int:
    """Recount the last ``RECOUNT_MINUTES`` whole-or-current minutes; returns the rows written."""
    from tracking import api as tracking_api

    now = now or timezone.now()
    until = _minute(now) + timedelta(minutes=1)
    since = until - timedelta(minutes=int(dashboard_setting("RECOUNT_MINUTES")) + 1)
    counts = tracking_api.traffic_counts_by_minute(since=since, until=until)
    rows = [
        TrafficMinute(minute=minute, metric=metric, label=label, count=n)
        for minute, metric, label, n in counts
    ]
    with transaction.atomic():
        TrafficMinute.objects.filter(minute__gte=since, minute__lt=until).delete()
        TrafficMinute.objects.bulk_create(rows)
    keep = now - timedelta(days=int(dashboard_setting("TRAFFIC_KEEP_DAYS")))
    TrafficMinute.objects.filter(minute__lt=keep).delete()
    return len(rows)


def rollup_refresh(*, now: datetime | None = None, analytics: bool = True) -> None:
    """One roll: a snapshot, the trailing minutes and (``analytics``) the site analytics of the days
    that changed (the beat task's body; in embedded mode the rollup thread's)."""
    from adsite.dashboard.analytics import analytics_roll_if_stale

    now = now or timezone.now()
    metrics_snapshot_take(now=now)
    traffic_minutes_roll(now=now)
    if analytics:
        analytics_roll_if_stale(now=now)


# a scheduled roller whose last analytics roll is this many periods old is taken to be down
ROLLER_DOWN_PERIODS = 5


def analytics_rolled_on_schedule(*, now: datetime | None = None) -> bool:
    """Whether a schedule rolls the site analytics (the beat in services mode, the web process's rollup
    thread in embedded mode) and has done so lately. Then a page view leaves the recount to it: a
    recount reads the whole of today's events (1-3 s at 10,000 visits a day, docs/benchmarks.md),
    which a staff member would otherwise wait for on every page view that found it due."""
    from django.conf import settings

    from adsite.dashboard.models import RollupMark

    scheduled = not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False) or bool(dashboard_setting("ROLLUP_THREAD"))
    if not scheduled:
        return False
    now = now or timezone.now()
    mark = RollupMark.objects.filter(name="analytics").values_list("at", flat=True).first()
    period = float(dashboard_setting("ANALYTICS_SECONDS"))
    return mark is not None and (now - mark).total_seconds() < ROLLER_DOWN_PERIODS * period


_thread_lock = threading.Lock()
_thread: threading.Thread | None = None


def rollup_thread_start(*, every_seconds: float | None = None) -> bool:
    """Embedded mode has no beat: a daemon thread of the web process rolls every ``SNAPSHOT_SECONDS``
    from start-up, so the charts have history from the first minute whether or not anyone opens the
    dashboard (started by ``scripts/gunicorn.conf.py``). Returns False when one already runs."""
    global _thread
    period = float(every_seconds if every_seconds is not None else dashboard_setting("SNAPSHOT_SECONDS"))

    def loop() -> None:
        from django.db import close_old_connections

        while True:
            try:
                rollup_refresh_if_stale()
            except Exception:
                logger.exception("dashboard.rollup_failed")
            finally:
                close_old_connections()
            time.sleep(period)

    with _thread_lock:
        if _thread is not None and _thread.is_alive():
            return False
        _thread = threading.Thread(target=loop, name="dashboard-rollup", daemon=True)
        _thread.start()
    return True


def rollup_refresh_if_stale(*, now: datetime | None = None, page_view: bool = False) -> bool:
    """Roll when this source's latest snapshot is older than ``SNAPSHOT_SECONDS``; True if it rolled.
    A ``page_view`` takes the snapshot and the trailing minutes (cheap) but leaves the analytics recount
    to the schedule when one runs (``analytics_rolled_on_schedule``)."""
    now = now or timezone.now()
    latest = (
        MetricSnapshot.objects.filter(source=snapshot_source())
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    if latest is not None and (now - latest).total_seconds() < float(dashboard_setting("SNAPSHOT_SECONDS")):
        return False
    rollup_refresh(now=now, analytics=not (page_view and analytics_rolled_on_schedule(now=now)))
    return True
