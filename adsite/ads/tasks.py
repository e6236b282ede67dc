"""Celery tasks of the ads app (thin; safe to run twice)."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="ads.purge_clicks", soft_time_limit=1500, time_limit=1800, ignore_result=True)
def purge_clicks() -> dict[str, int]:
    """Delete ``AdClick`` rows past ``ADS["CLICK_RETENTION_DAYS"]`` (Celery beat, hourly)."""
    from adsite.ads.services.privacy import clicks_purge

    return {"clicks": clicks_purge()}


@shared_task(name="ads.click_rows_settle", soft_time_limit=50, time_limit=60, ignore_result=True)
def click_rows_settle() -> dict[str, int]:
    """Write the click rows billed while the database was away (Celery beat, every few seconds)."""
    from django.db import DatabaseError

    from adsite.ads.accounting import LedgerUnavailable
    from adsite.ads.services.billing import click_rows_settle as settle

    try:
        return {"settled": settle()}
    except (DatabaseError, LedgerUnavailable) as exc:  # an outage: they stay owed, the next run retries
        logger.warning("ads.click_rows_waiting: %s", type(exc).__name__)
        return {"settled": 0, "waiting": 1}


@shared_task(name="ads.reservations_void", soft_time_limit=50, time_limit=60, ignore_result=True)
def reservations_void() -> dict[str, int]:
    """Void the reservations whose answers were lost, kept in the database (Celery beat, every few seconds)."""
    from django.db import DatabaseError

    from adsite.ads.accounting import LedgerUnavailable
    from adsite.ads.services.reservations import reservations_void as void

    try:
        return void()
    except (DatabaseError, LedgerUnavailable) as exc:  # an outage: they stay kept, the next run retries
        logger.warning("ads.reservations_void_waiting: %s", type(exc).__name__)
        return {"voided": 0, "waiting": 1}
