"""Celery tasks of the dashboard: the periodic rollup (thin; safe to run twice: it upserts)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="dashboard.rollup", soft_time_limit=50, time_limit=60)
def rollup() -> None:
    from adsite.dashboard.rollup import rollup_refresh

    rollup_refresh()
