"""Celery tasks of the ads app (thin; safe to run twice)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="ads.purge_clicks", soft_time_limit=1500, time_limit=1800, ignore_result=True)
def purge_clicks() -> dict[str, int]:
    """Delete ``AdClick`` rows past ``ADS["CLICK_RETENTION_DAYS"]`` (Celery beat, hourly)."""
    from adsite.ads.services.privacy import clicks_purge

    return {"clicks": clicks_purge()}
