"""Dashboard settings: defaults here, overrides in ``settings.DASHBOARD`` (a namespaced dict)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # a page view of the overview takes a fresh metrics snapshot when the latest is older than this
    "SNAPSHOT_SECONDS": 10.0,
    # the site analytics (visits, hourly counts by event time) recount today and the changed days at
    # most this often (a recount of today reads today's events)
    "ANALYTICS_SECONDS": 60.0,
    # the trailing minutes recounted from tracking's tables at each roll (late flushes land in them)
    "RECOUNT_MINUTES": 5,
    # rollups older than this are deleted by the roll
    "SNAPSHOT_KEEP_HOURS": 48,
    "TRAFFIC_KEEP_DAYS": 14,
    # the overview's JSON is fetched this often by the page
    "REFRESH_SECONDS": 5,
    # embedded mode: a thread of the web process runs the rollups (there is no beat); serve.sh turns it on
    "ROLLUP_THREAD": False,
    # eager Celery (embedded mode): run "train now" on a background thread so the request returns
    "TRAIN_IN_BACKGROUND": True,
}


def dashboard_setting(name: str) -> Any:
    configured = getattr(settings, "DASHBOARD", {}) or {}
    return configured.get(name, DEFAULTS[name])
