"""Online feature updates that could not be applied when the events arrived, and their catch-up.

Promises:

* ``events_observe_safe`` hands accepted events to ``inference.api.events_observe`` and never raises.
  When the feature store is unreachable (``FeatureStoreUnavailable``: Redis down in services mode)
  the events' ids are kept in the ``FeatureBacklog`` table, durable across restarts and shared by
  every web process. The outage is logged once per process as a WARNING without a traceback
  (``tracking.feature_store_unavailable``), and its end once (``tracking.feature_store_recovered``).
  Any other exception is a bug in the feature code, not an outage: logged with its traceback, not
  backlogged (it would fail again on every catch-up).
* ``features_catch_up`` (Celery beat ``tracking.features_catch_up``, or ``manage.py
  features_catch_up``) applies the backlog through the same ``inference.api.events_observe``, in
  event time order, in batches. Each batch's rows are locked (``SELECT ... FOR UPDATE SKIP LOCKED``
  on PostgreSQL; SQLite's write lock serializes) and deleted in the transaction that applied them, so
  two runs at once or one after the other never apply an event twice. While the store is still
  unreachable the batch rolls back and waits for the next run.
* The events are read from ``Event``: an event still in the Redis buffer waits for its flush; one that
  is not there after ``TRACKING["FEATURE_BACKLOG_ORPHAN_SECONDS"]`` (lost with a Redis restart, or the
  visitor's data deleted) is dropped, so a deleted visitor is never fed back into the features.

On a Redis Cluster a batch may reach some visitors and not others (a master failing under it): the store
names the visitors it reached (``FeatureStorePartlyApplied``), and only the other visitors' events are
backlogged, at collection and in the catch-up alike, so nobody's features count an event twice.

What it cannot promise: a write whose reply is lost (a timeout after Redis ran the batch) counts as
failed and is applied again by the catch-up; so is a batch applied just before the database failed to
commit its deletion. Both need the store and the database to fail within milliseconds of each other.
``manage.py features_rebuild`` replays every stored event, backlogged ones included, so it empties the
backlog first (``feature_backlog_clear``, a receiver of ``store_rebuild_started``): the catch-up
never applies a replayed event a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from inference import api as inference_api
from inference.api import EventRecord
from tracking.conf import tracking_settings
from tracking.models import FeatureBacklog
from tracking.process_state import tracking_state
from tracking.selectors import event_records_by_id

logger = logging.getLogger(__name__)


def events_observe_safe(
    records: Sequence[EventRecord], *, event_ids: Sequence[str], answers_refresh: bool = True
) -> None:
    """Hand records (``event_ids[i]`` is ``records[i]``'s id) to inference; never raises. ``answers_refresh``
    False (an import of past events): the visitors' stored answers are not recomputed now (see
    ``inference.api.events_observe``).

    An unreachable store backlogs the ids for ``features_catch_up`` (see the module docstring).
    """
    if not records:
        return
    try:
        if answers_refresh:
            inference_api.events_observe(records)
        else:
            inference_api.events_observe(records, answers_refresh=False)
    except inference_api.FeatureStorePartlyApplied as exc:
        # a Redis Cluster master failed under the batch: the visitors it reached are done (each whole); only
        # the others' events wait for the catch-up, which would otherwise count the first ones twice
        missed = [(r, e) for r, e in zip(records, event_ids, strict=True) if r.user_id not in exc.applied_users]
        feature_backlog_add([r for r, _ in missed], event_ids=[e for _, e in missed], reason=str(exc))
        return
    except inference_api.FeatureStoreUnavailable as exc:
        feature_backlog_add(records, event_ids=event_ids, reason=str(exc))
        return
    except Exception:
        logger.exception("tracking.events_observe_failed", extra={"records": len(records)})
        return
    feature_store_recovered()


def feature_store_outage() -> dict[str, object] | None:
    """This process's current outage of the feature store (``since``: when its first update failed,
    ``backlogged``: the events kept for the catch-up since), or None while the store answers."""
    return tracking_state().store.current()


def feature_store_recovered() -> None:
    """The store answered: this process's outage, if one was running, ends (logged once, with the events
    it backlogged); the next failed update starts a new one (warned once again)."""
    ended = tracking_state().store.end()
    if ended:
        logger.info("tracking.feature_store_recovered", extra={"backlogged": ended.get("backlogged", 0)})


def feature_backlog_clear() -> int:
    """Forget the whole backlog (a full rebuild of the features is about to replay every stored event).
    Returns the rows removed."""
    removed, _ = FeatureBacklog.objects.all().delete()
    if removed:
        logger.info("tracking.feature_backlog_cleared %d (the feature store is being rebuilt)", removed)
    return removed


def feature_backlog_add(records: Sequence[EventRecord], *, event_ids: Sequence[str], reason: str) -> int:
    """Keep the ids of events whose feature update failed; returns how many were kept.

    Idempotent on ``event_id``. If the database cannot take them either, the update is lost (logged).
    """
    if len(records) != len(event_ids):
        raise ValueError("one event id per record")
    now = timezone.now()
    rows = [
        FeatureBacklog(event_id=event_id, ts=datetime.fromtimestamp(record.ts, tz=UTC), recorded_at=now)
        for event_id, record in zip(event_ids, records, strict=True)
    ]
    try:
        with transaction.atomic():  # a savepoint when the caller has a transaction open
            FeatureBacklog.objects.bulk_create(rows, ignore_conflicts=True)
    except DatabaseError as exc:
        logger.error(
            "tracking.feature_backlog_write_failed",
            extra={"events": len(rows), "error": f"{type(exc).__name__}: {exc}"},
        )
        return 0
    if tracking_state().store.backlog(len(rows), now=now):
        # Once per outage (per process), no traceback: every request of the outage fails the same way.
        logger.warning(
            "tracking.feature_store_unavailable",
            extra={"error": reason, "backlogged": len(rows), "then": "features_catch_up applies them later"},
        )
    return len(rows)


@dataclass(frozen=True, slots=True)
class CatchUpResult:
    applied: int = 0  # events handed to the feature store
    waiting: int = 0  # not yet in the Event table (still buffered): left for a later run
    dropped: int = 0  # never reached the Event table within the grace period (or deleted since)
    store_unavailable: bool = False  # stopped because the store is still unreachable


def features_catch_up(*, batch_size: int | None = None, max_batches: int | None = None) -> CatchUpResult:
    """Apply the backlogged feature updates, oldest event first; safe to run twice and concurrently."""
    conf = tracking_settings()
    batch_size = batch_size or int(conf.FEATURE_CATCH_UP_BATCH)
    cutoff = timezone.now() - timedelta(seconds=float(conf.FEATURE_BACKLOG_ORPHAN_SECONDS))
    applied = waiting = dropped = batches = 0
    after: tuple[datetime, str] | None = None
    while max_batches is None or batches < max_batches:
        try:
            with transaction.atomic():
                query = FeatureBacklog.objects.select_for_update(skip_locked=True)
                if after is not None:
                    query = query.filter(Q(ts__gt=after[0]) | Q(ts=after[0], event_id__gt=after[1]))
                backlog = list(query.order_by("ts", "event_id").values_list("event_id", "ts", "recorded_at")[:batch_size])
                if not backlog:
                    break
                after = (backlog[-1][1], str(backlog[-1][0]))
                found = event_records_by_id(event_ids=[str(row[0]) for row in backlog])
                present = {event_id for event_id, _record in found}
                orphans = [str(eid) for eid, _ts, recorded in backlog if str(eid) not in present and recorded < cutoff]
                partly: inference_api.FeatureStorePartlyApplied | None = None
                if found:
                    try:
                        inference_api.events_observe([record for _event_id, record in found])
                    except inference_api.FeatureStorePartlyApplied as exc:
                        # the visitors the batch reached leave the backlog now, the others stay for the next run
                        partly = exc
                        reached = [eid for eid, record in found if record.user_id in exc.applied_users]
                        FeatureBacklog.objects.filter(event_id__in=[*reached, *orphans]).delete()
                if partly is None:
                    FeatureBacklog.objects.filter(event_id__in=[*present, *orphans]).delete()
            if partly is not None:
                raise partly
        except inference_api.FeatureStoreUnavailable as exc:
            logger.warning("tracking.features_catch_up_waiting", extra={"error": str(exc), "applied": applied})
            return CatchUpResult(applied, waiting, dropped, store_unavailable=True)
        batches += 1
        applied += len(found)
        dropped += len(orphans)
        waiting += len(backlog) - len(found) - len(orphans)
    if applied or dropped:
        logger.info("tracking.features_caught_up", extra={"applied": applied, "dropped": dropped, "waiting": waiting})
    if dropped:
        logger.warning("tracking.feature_backlog_dropped", extra={"events": dropped})
    return CatchUpResult(applied, waiting, dropped)
