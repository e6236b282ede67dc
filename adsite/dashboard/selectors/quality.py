"""Reads behind the data-quality page: quarantine rows by reason and the ledger's counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from adsite.dashboard.selectors.windows import (
    WINDOWS,
    traffic_series,
    traffic_totals,
)


def quality_page(
    *, reason: str | None = None, before_id: int | None = None, limit: int = 50, now: datetime | None = None
) -> dict[str, Any]:
    from tracking import api as tracking_api

    now = now or timezone.now()
    start = now - WINDOWS["day"]
    traffic = traffic_totals(start, now)
    events, bots = traffic.get("events", {}), traffic.get("bots", {})
    total = sum(events.values()) + sum(bots.values())
    rows = tracking_api.quarantined_list(reason=reason, before_id=before_id, limit=limit)
    return {
        "reasons": tracking_api.quarantine_reasons(),
        # events stored but not yet in the online features (the feature store was unreachable)
        "feature_backlog": tracking_api.feature_backlog_size(),
        "reasons_day": traffic.get("quarantined", {}),
        "rows": rows,
        "next_before": rows[-1].id if len(rows) == limit else None,
        "bot_share": round(sum(bots.values()) / total, 4) if total else None,
        "events_day": events,
        "bots_day": bots,
        "events_series": traffic_series(start=start, end=now, metric="events", points=24),
        "quarantine_series": traffic_series(start=start, end=now, metric="quarantined", points=24),
    }
