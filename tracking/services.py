"""Writes of the tracking app: ingesting a batch of events, quarantining input, ledger counters.

``events_ingest`` is the one path every source goes through (``/collect``, ``/api/v1/events``, the
server-side page view; imports use the same schema and storage in bigger transactions):

1. validate each event (``tracking.schema``); rejected ones become quarantine rows with their reason;
2. services mode: append the valid ones to the Redis Stream (deduped atomically in Redis); if Redis
   is unavailable, or in embedded mode, write them to the database in ONE transaction with
   ``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING`` and the ledger counters beside them;
3. hand the newly accepted, non-bot events to ``inference.api.events_observe`` through
   ``tracking.features_backlog.events_observe_safe``: never raised (the events are already safe); an
   unreachable feature store backlogs them for ``features_catch_up``.

If neither Redis nor the database can take the batch, :class:`StorageUnavailable` is raised and the
view answers 503 so that the sender retries; nothing is answered "accepted" and then lost. An anonymous
sender whose quarantine budget is spent (``tracking.quarantine_budget``) gets
:class:`QuarantineBudgetSpent` (429) for a batch that would add to quarantine, before anything is stored.

Ledger counters (``LedgerCounter`` rows, plus the Redis hash in services mode): ``received`` counts
every event offered (and every body that could not be read as events, as one), ``duplicates`` the
copies not stored again. The ``quarantined``, ``stored`` and ``buffered`` figures are counted from the
rows themselves (see ``tracking.selectors.ledger_get``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import redis
from django.db import DatabaseError, transaction
from django.http import HttpRequest
from django.utils import timezone

from inference.api import AD_TYPES, EventRecord, category_taxonomy
from tracking.bots import user_agent_device, user_agent_is_bot
from tracking.buffer import BufferPartlyAppended, buffer_enabled, stream_append
from tracking.conf import tracking_settings
from tracking.consent import tracking_allowed
from tracking.features_backlog import events_observe_safe
from tracking.identity import visitor_id, visitor_id_from_cookie
from tracking.models import QuarantinedEvent
from tracking.network import client_ip_truncated
from tracking.process_state import tracking_state
from tracking.quarantine_budget import quarantine_budget_charge
from tracking.schema import (
    NO_IDENTITY_COOKIE,
    SLUG_RE,
    USER_ID_MISMATCH,
    Limits,
    Rejection,
    ValidEvent,
    event_validate,
    payload_text,
    safe_text,
)
from tracking.signals import ad_events_accepted
from tracking.storage import Row, categories_json, events_insert, json_compact, ledger_add

logger = logging.getLogger(__name__)

SOURCES = ("tracker", "api", "server", "import")


class QuarantineBudgetSpent(Exception):
    """This sender's quarantine budget is spent (``tracking.quarantine_budget``): 429, nothing stored."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"quarantine budget spent; retry after {retry_after:.0f} s")
        self.retry_after = retry_after


def _quarantine_budget_check(*, context: IngestContext, rows: Sequence[QuarantinedEvent]) -> None:
    """Raise ``QuarantineBudgetSpent`` when an anonymous sender may not add ``rows`` to quarantine."""
    if not rows or context.source != "tracker":
        return
    retry_after = quarantine_budget_charge(
        client=context.ip, rows=len(rows), payload_bytes=sum(len(row.payload.encode()) for row in rows)
    )
    if retry_after is not None:
        raise QuarantineBudgetSpent(retry_after)


class StorageUnavailable(Exception):
    """Neither the buffer nor the database could take the batch: the sender should retry (503)."""


@dataclass(frozen=True, slots=True)
class IngestContext:
    """What the server knows about a batch besides its events."""

    source: str  # tracker, api, server, import
    received_at: datetime
    ip: str = ""
    user_agent: str = ""
    is_bot: bool = False
    device: str = "other"
    # /collect: the visitor's cookie id, used when an event carries no user_id
    fallback_user_id: str = ""
    # /collect: a browser speaks only for its own visitor: every event's user_id must be the identity
    # cookie's (``fallback_user_id``); without the cookie nothing is accepted
    identity_bound: bool = False
    # live tracker events may not be older than this (0: no limit)
    max_age_ms: int = 0


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    index: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int = 0
    duplicate: int = 0
    rejected: tuple[RejectedEvent, ...] = ()
    dropped_for_privacy: int = 0
    # True when the accepted events went to the Redis Stream (and reach the table on the next flush)
    buffered: bool = False
    accepted_ids: frozenset[str] = field(default_factory=frozenset)


def context_from_request(*, request: HttpRequest, source: str) -> IngestContext:
    """The ingest context of an HTTP request.

    For ``api`` (server to server) the request's User-Agent and address are the sending server's, not
    the visitor's: neither is stored nor used for bot flagging there.
    """
    received_at = timezone.now()
    if source == "api":
        return IngestContext(source=source, received_at=received_at)
    user_agent = safe_text(request.META.get("HTTP_USER_AGENT", "") or "", max_chars=512)
    conf = tracking_settings()
    return IngestContext(
        source=source,
        received_at=received_at,
        ip=client_ip_truncated(request),
        user_agent=user_agent,
        is_bot=user_agent_is_bot(user_agent),
        device=user_agent_device(user_agent),
        fallback_user_id=visitor_id_from_cookie(request) if source == "tracker" and tracking_allowed(request) else "",
        identity_bound=source == "tracker",
        max_age_ms=int(conf.COLLECT_MAX_AGE_DAYS) * 86_400_000 if source == "tracker" else 0,
    )


def limits_for(*, now_ms: int, max_age_ms: int = 0) -> Limits:
    conf = tracking_settings()
    return Limits(
        now_ms=now_ms,
        min_ts_ms=int(conf.MIN_TS_SECONDS) * 1000,
        max_future_ms=int(conf.MAX_FUTURE_SECONDS) * 1000,
        max_age_ms=max_age_ms,
        max_categories=int(conf.MAX_CATEGORIES),
        max_properties_bytes=int(conf.MAX_PROPERTIES_BYTES),
    )


def row_from_event(event: ValidEvent, *, context: IngestContext, received_at_us: int) -> Row:
    """The canonical storage row (see ``tracking.storage.ROW_FIELDS``)."""
    return (
        event.event_id,
        event.type,
        event.user_id,
        event.session_id,
        event.ts_ms,
        received_at_us,
        event.url,
        event.referrer,
        event.item_id,
        categories_json(event.categories),
        json_compact(event.ad) if event.ad is not None else None,
        json_compact(event.properties) if event.properties else "{}",
        context.is_bot,
        context.ip,
        context.user_agent,
        context.source,
    )


def event_record_from(event: ValidEvent, *, device: str) -> EventRecord:
    """The inference contract's record of one accepted event."""
    ad = event.ad or {}
    engaged = event.properties.get("engaged_ms", 0) if event.type == "page_ping" else 0
    return EventRecord(
        user_id=event.user_id,
        ts=event.ts_ms / 1000.0,
        type=event.type,
        categories=event.categories,
        item_id=event.item_id,
        session_id=event.session_id,
        engaged_ms=int(engaged) if isinstance(engaged, int | float) and not isinstance(engaged, bool) else 0,
        device=device,
        campaign_id=ad.get("campaign_id", ""),
        creative_id=ad.get("creative_id", ""),
        serve_id=ad.get("serve_id", ""),
        properties=event.properties,
    )


def quarantine_row(
    *,
    reason: str,
    detail: str,
    payload: str,
    payload_bytes: int,
    context: IngestContext,
    batch_index: int | None = None,
    user_id: str = "",
) -> QuarantinedEvent:
    return QuarantinedEvent(
        received_at=context.received_at,
        reason=reason,
        detail=safe_text(detail, max_chars=1000),
        payload=payload,
        payload_bytes=min(payload_bytes, 2_147_483_647),
        batch_index=batch_index,
        user_id=safe_text(user_id, max_chars=64),
        source=context.source,
        user_agent=context.user_agent,
        ip=context.ip,
    )


def body_quarantine(*, body: bytes, size: int, reason: str, detail: str, context: IngestContext) -> None:
    """Keep a body that could not be read as events (not JSON, too large, not a batch): one row,
    counted as one received item. Raises ``StorageUnavailable`` when the database is down."""
    from tracking.schema import body_text

    conf = tracking_settings()
    row = quarantine_row(
        reason=reason,
        detail=detail,
        payload=body_text(body, max_chars=int(conf.QUARANTINE_PAYLOAD_CHARS)),
        payload_bytes=size,
        context=context,
    )
    _quarantine_budget_check(context=context, rows=[row])
    try:
        with transaction.atomic():
            QuarantinedEvent.objects.bulk_create([row])
            ledger_add({"received": 1})
    except DatabaseError as exc:
        logger.exception("tracking.quarantine_write_failed")
        raise StorageUnavailable("database unavailable") from exc
    logger.info("tracking.body_rejected", extra={"reason": reason, "bytes": size, "source": context.source})


def ledger_counter_add(*, name: str, n: int) -> None:
    """Add ``n`` to the ledger counter ``name`` (e.g. ``deleted`` when purging), on the caller's
    transaction if there is one."""
    with transaction.atomic():
        ledger_add({name: n})


def _raw_user_id(raw: object, fallback: str) -> str:
    if isinstance(raw, dict):
        value = raw.get("user_id")
        if isinstance(value, str) and value:
            return value
    return fallback


# sources whose categories are anyone's input: limited to the site's taxonomy before they reach features
TAXONOMY_BOUND_SOURCES = ("tracker", "server")


def _observe_new(valid: Sequence[ValidEvent], new_ids: set[str], *, device: str, source: str = "") -> None:
    seen: set[str] = set()
    records = []
    event_ids = []
    # A browser can send any slug: only the site's categories reach the visitor's features and the
    # shared population (which every process re-reads and cold-start answers rank), so a slug flood
    # cannot grow them or push made-up categories into everyone's answers. The stored event keeps them.
    known = category_taxonomy() if source in TAXONOMY_BOUND_SOURCES else frozenset()
    for event in valid:
        if event.event_id in new_ids and event.event_id not in seen:
            seen.add(event.event_id)
            record = event_record_from(event, device=device)
            if known and record.categories and not known.issuperset(record.categories):
                record = replace(record, categories=tuple(c for c in record.categories if c in known))
            records.append(record)
            event_ids.append(event.event_id)
    events_observe_safe(records, event_ids=event_ids)
    ad_events_hand_over([record for record in records if record.type in AD_TYPES])


def ad_events_hand_over(records: Sequence[EventRecord]) -> None:
    """Announce accepted ad events (``signals.ad_events_accepted``: the ads app counts viewable
    impressions); a failing receiver is logged, never raised."""
    if not records:
        return
    for receiver, outcome in ad_events_accepted.send_robust(sender=ad_events_hand_over, records=records):
        if isinstance(outcome, Exception):
            logger.error(
                "tracking.ad_event_receiver_failed %s: %r", getattr(receiver, "__qualname__", receiver), outcome,
                exc_info=outcome, extra={"records": len(records)},
            )


def events_ingest(*, events: Sequence[object], context: IngestContext) -> IngestResult:
    """Validate, dedupe and store (or buffer) one batch; see the module docstring."""
    started = time.perf_counter()
    conf = tracking_settings()
    received_at_us = int(context.received_at.timestamp() * 1_000_000)
    limits = limits_for(now_ms=received_at_us // 1000, max_age_ms=context.max_age_ms)
    valid: list[ValidEvent] = []
    rejected: list[RejectedEvent] = []
    quarantine: list[QuarantinedEvent] = []
    for index, raw in enumerate(events):
        outcome = event_validate(raw, limits=limits, fallback_user_id=context.fallback_user_id)
        if context.identity_bound and not isinstance(outcome, Rejection) and outcome.user_id != context.fallback_user_id:
            # a cross-site beacon (no cookie of ours) or a script naming someone else's visitor id
            outcome = (
                Rejection(USER_ID_MISMATCH, "user_id must be the visitor's own (the identity cookie's)")
                if context.fallback_user_id
                else Rejection(NO_IDENTITY_COOKIE, "a browser's events need the identity cookie")
            )
        if isinstance(outcome, Rejection):
            rejected.append(RejectedEvent(index, outcome.reason, outcome.detail))
            payload, size = payload_text(raw, max_chars=int(conf.QUARANTINE_PAYLOAD_CHARS))
            quarantine.append(
                quarantine_row(
                    reason=outcome.reason,
                    detail=outcome.detail,
                    payload=payload,
                    payload_bytes=size,
                    context=context,
                    batch_index=index,
                    user_id=_raw_user_id(raw, context.fallback_user_id),
                )
            )
        else:
            valid.append(outcome)
    # before anything is stored: a sender over its quarantine budget gets 429 for the whole batch
    _quarantine_budget_check(context=context, rows=quarantine)
    rows = [row_from_event(event, context=context, received_at_us=received_at_us) for event in valid]

    new_ids: set[str] | None = None
    through: list[Row] = rows  # rows the buffer did not take: written through to the database
    buffered = False
    if rows and buffer_enabled():
        try:
            new_ids = stream_append(rows)
            through = []
            buffered = True
            tracking_state().buffer.up()
        except BufferPartlyAppended as exc:  # some shards of the buffer took theirs (scale-out)
            new_ids, through = set(exc.new_ids), exc.rows
            buffered = True
            tracking_state().buffer.down(exc)
        except redis.RedisError as exc:
            # Write through: the database dedupes on its unique index just as well.
            tracking_state().buffer.down(exc)
    failure: DatabaseError | None = None
    try:
        # A batch wholly taken by the buffer touches no database: it is accepted while PostgreSQL is down.
        if through or new_ids is None or quarantine:
            with transaction.atomic():
                if through:
                    inserted = events_insert(through)
                    ledger_add(
                        {"received": len(through) + len(quarantine), "duplicates": len(through) - len(inserted)}
                    )
                    new_ids = (new_ids or set()) | inserted
                else:
                    if new_ids is None:
                        new_ids = set()
                    ledger_add({"received": len(quarantine)})
                if quarantine:
                    QuarantinedEvent.objects.bulk_create(quarantine)
    except DatabaseError as exc:
        logger.exception("tracking.storage_unavailable", extra={"events": len(rows), "buffered": buffered})
        failure = exc
        if not buffered:
            new_ids = set()
    assert new_ids is not None
    # Events already safe in the buffer are observed even if the quarantine write failed: the
    # sender's retry will find them duplicates and they would otherwise never reach the features.
    if not context.is_bot and new_ids:
        _observe_new(valid, new_ids, device=context.device, source=context.source)
    if failure is not None:
        raise StorageUnavailable("database unavailable") from failure
    if rejected:
        logger.info(
            "tracking.events_rejected",
            extra={"source": context.source, "reasons": sorted({item.reason for item in rejected})},
        )
    logger.debug(
        "tracking.batch_ingested",
        extra={"events": len(events), "ms": round((time.perf_counter() - started) * 1000, 3)},
    )
    return IngestResult(
        accepted=len(new_ids),
        duplicate=len(rows) - len(new_ids),
        rejected=tuple(rejected),
        buffered=buffered,
        accepted_ids=frozenset(new_ids),
    )


def page_view_record_server(
    *, request: HttpRequest, event_id: uuid.UUID, url: str, item_id: str, categories: list[str]
) -> None:
    """Record the ``page_view`` of a page the server rendered (pages seen without JavaScript count too).

    The page embeds ``event_id`` and ``tracker.js`` sends its own ``page_view`` with the same id, which
    dedupes against this one: exactly one page view. Nothing is recorded when the request carries DNT
    or GPC, or lacks required consent.
    """
    if not tracking_allowed(request):
        return
    context = context_from_request(request=request, source="server")
    event = {
        "event_id": str(event_id),
        "type": "page_view",
        "user_id": visitor_id(request),
        "ts": int(context.received_at.timestamp() * 1000),
        "url": url[:2048],
        "referrer": (request.META.get("HTTP_REFERER", "") or "")[:2048],
        "item_id": item_id[:128],
        "categories": [slug for slug in categories if isinstance(slug, str) and SLUG_RE.match(slug)][:20],
    }
    events_ingest(events=[event], context=context)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    replayed: int = 0  # offered to ingest again (each row once)
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0  # still invalid: quarantined again under a new row with the current reason
    unreadable: int = 0  # payload not a JSON object (or cut short when kept): left as it was


def quarantined_replay(*, ids: Sequence[int]) -> ReplayResult:
    """Offer quarantined events to ``events_ingest`` again (after a fix) and mark each row replayed.

    Each row goes through the same path as live input (validation, dedupe on ``event_id``, features),
    with its original source, user agent and address and no age limit. A row is marked ``replayed_at``
    whatever the outcome, so a replay is never repeated by accident; one that is still invalid is
    quarantined again as a new row. The ledger still reconciles: the replay counts as received once more.
    """
    import json

    rows = list(
        QuarantinedEvent.objects.filter(id__in=list(ids), replayed_at__isnull=True)
        .order_by("id")
        .values_list("id", "payload", "source", "user_agent", "ip", "user_id")[:1000]
    )
    totals = {"replayed": 0, "accepted": 0, "duplicate": 0, "rejected": 0, "unreadable": 0}
    now = timezone.now()
    for row_id, payload, source, user_agent, ip, user_id in rows:
        try:
            event = json.loads(payload)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            totals["unreadable"] += 1
            continue
        context = IngestContext(
            source=source if source in SOURCES else "api",
            received_at=now,
            ip=ip,
            user_agent=user_agent,
            is_bot=user_agent_is_bot(user_agent),
            device=user_agent_device(user_agent),
            fallback_user_id=user_id,
        )
        result = events_ingest(events=[event], context=context)
        QuarantinedEvent.objects.filter(id=row_id).update(replayed_at=now)
        totals["replayed"] += 1
        totals["accepted"] += result.accepted
        totals["duplicate"] += result.duplicate
        totals["rejected"] += len(result.rejected)
    logger.info("tracking.quarantine_replayed", extra=totals)
    return ReplayResult(**totals)
