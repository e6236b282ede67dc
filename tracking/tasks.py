"""Celery tasks of the tracking app: thin, safe to run twice, each calls one service."""

from __future__ import annotations

import logging

import redis
from celery import shared_task
from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)


@shared_task(name="tracking.flush_events", soft_time_limit=50, time_limit=60, ignore_result=True)
def flush_events(max_batches: int = 200, shard: int | None = None) -> dict[str, int]:
    """Drain the Redis Stream buffer into the Event table (services mode; nothing to do otherwise).

    Safe to run concurrently and twice: entries are handed out by a consumer group, the insert is
    idempotent and entries are acknowledged only after their batch committed. A buffer in shards
    (scale-out) gets one task per shard, so that the workers flush the shards side by side.
    """
    from tracking.buffer import buffer_enabled, shards, stream_flush

    if not buffer_enabled():
        return {"entries": 0, "inserted": 0, "duplicates": 0}
    if shard is None and len(shards()) > 1:
        for index in range(len(shards())):
            flush_events.delay(max_batches=max_batches, shard=index)
        return {"entries": 0, "inserted": 0, "duplicates": 0, "shards": len(shards())}
    try:
        result = stream_flush(max_batches=max_batches, shard=shard)
    except (redis.ConnectionError, redis.TimeoutError, OperationalError, InterfaceError) as exc:
        # an outage, not a bug: the entries stay pending and the next scheduled run retries; one line,
        # no traceback (a repeat within a minute is counted, adsite/ops/log_repeats.py)
        logger.warning("tracking.flush_waiting: %s: %s", type(exc).__name__, str(exc).splitlines()[0][:200])
        return {"entries": 0, "inserted": 0, "duplicates": 0, "waiting": 1}
    return {"entries": result.entries, "inserted": result.inserted, "duplicates": result.duplicates}


@shared_task(name="tracking.purge_expired", soft_time_limit=1500, time_limit=1800, ignore_result=True)
def purge_expired() -> dict[str, int]:
    """The scheduled retention purge (``TRACKING["RETENTION_DAYS"]``). Safe to run twice: it deletes by age."""
    from tracking.privacy import events_purge_expired

    result = events_purge_expired()
    return {"events": result.events, "quarantined": result.quarantined}


@shared_task(name="tracking.partitions_ensure", soft_time_limit=300, time_limit=360, ignore_result=True)
def partitions_ensure() -> dict[str, int]:
    """Create the events table's day partitions ahead (PostgreSQL; nothing to do on SQLite). Safe to run
    twice and concurrently: a partition that exists is left alone (``tracking.partitions``)."""
    from tracking.partitions import event_partitions_ensure

    return {"created": len(event_partitions_ensure())}


@shared_task(name="tracking.features_catch_up", soft_time_limit=50, time_limit=60, ignore_result=True)
def features_catch_up(max_batches: int = 200) -> dict[str, int]:
    """Apply the feature updates that failed while the feature store was unreachable.

    Safe to run twice and concurrently: each batch's backlog rows are locked and deleted in the
    transaction that applied them (see ``tracking.features_backlog``).
    """
    from tracking.features_backlog import features_catch_up as catch_up

    result = catch_up(max_batches=max_batches)
    return {
        "applied": result.applied,
        "waiting": result.waiting,
        "dropped": result.dropped,
        "store_unavailable": int(result.store_unavailable),
    }
