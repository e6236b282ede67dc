"""Reads of the tracking app: the ledger and the event stream that training replays.

``ledger_get`` reconciles: ``received = stored + duplicates + sum(quarantined) + buffered + deleted +
deleted_quarantine``. ``stored``, ``bots`` and ``quarantined`` are counted from the tables,
``buffered`` from the Redis Stream (services mode; 0 in embedded mode), ``received`` and
``duplicates`` are counters written in the same transaction (or Lua script) as the rows they count;
``deleted`` / ``deleted_quarantine`` are added by the privacy operations when they remove rows.
``dropped_for_privacy`` (events refused because of DNT, GPC or missing consent) is reported
separately: those events were never received into the pipeline and nothing of them is stored.
While a flush is in progress (inserted, not yet acknowledged) a batch can be counted both as stored
and as buffered for a moment.

``feature_backlog`` (outside the reconciliation) counts stored events whose online feature update
failed and waits for ``features_catch_up`` (see ``tracking.features_backlog``).

``event_records_iter`` streams non-bot events in (ts, id) order with keyset pagination, so memory
stays bounded by ``chunk_size`` however many events there are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import Count, Q

from inference.api import EventRecord
from tracking.bots import user_agent_device
from tracking.buffer import buffer_enabled, ledger_counts_redis, stream_length
from tracking.models import Event, FeatureBacklog, LedgerCounter, QuarantinedEvent

EXTRA_COUNTERS = ("deleted", "deleted_quarantine")


def ledger_get() -> dict[str, Any]:
    """The ledger (see the module docstring); raises ``redis.RedisError`` if the buffer is unreachable."""
    counters = dict(LedgerCounter.objects.values_list("name", "value"))
    if buffer_enabled():
        for name, value in ledger_counts_redis().items():
            counters[name] = counters.get(name, 0) + value
        buffered = stream_length()
    else:
        buffered = 0
    quarantined = {
        row["reason"]: row["n"]
        for row in QuarantinedEvent.objects.values("reason").annotate(n=Count("id")).order_by("reason")
    }
    ledger: dict[str, Any] = {
        "received": int(counters.get("received", 0)),
        "stored": Event.objects.count(),
        "duplicates": int(counters.get("duplicates", 0)),
        "quarantined": quarantined,
        "buffered": buffered,
        "bots": Event.objects.filter(is_bot=True).count(),
    }
    for name in EXTRA_COUNTERS:
        ledger[name] = int(counters.get(name, 0))
    ledger["dropped_for_privacy"] = int(counters.get("dropped_for_privacy", 0))
    # not part of the reconciliation: stored events whose feature update waits for the catch-up
    ledger["feature_backlog"] = feature_backlog_size()
    ledger["unaccounted"] = ledger["received"] - ledger_accounted(ledger)
    return ledger


def ledger_accounted(ledger: dict[str, Any]) -> int:
    """What the received events became: stored + duplicates + quarantined + buffered + deleted."""
    return (
        ledger["stored"]
        + ledger["duplicates"]
        + sum(ledger["quarantined"].values())
        + ledger["buffered"]
        + sum(ledger.get(name, 0) for name in EXTRA_COUNTERS)
    )


_RECORD_FIELDS = (
    "id",
    "ts",
    "user_id",
    "type",
    "categories",
    "item_id",
    "session_id",
    "properties",
    "user_agent",
    "ad",
)


def _record(row: tuple[Any, ...]) -> EventRecord:
    _pk, ts, user_id, event_type, categories, item_id, session_id, properties, user_agent, ad = row
    properties = properties if isinstance(properties, dict) else {}
    ad = ad if isinstance(ad, dict) else {}
    engaged = properties.get("engaged_ms", 0) if event_type == "page_ping" else 0
    return EventRecord(
        user_id=user_id,
        ts=ts.timestamp(),
        type=event_type,
        categories=tuple(categories or ()),
        item_id=item_id,
        session_id=session_id,
        engaged_ms=int(engaged) if isinstance(engaged, int | float) and not isinstance(engaged, bool) else 0,
        device=user_agent_device(user_agent),
        campaign_id=str(ad.get("campaign_id", "")),
        creative_id=str(ad.get("creative_id", "")),
        properties=properties,
    )


def event_records_iter(
    *, since: datetime | None = None, until: datetime | None = None, chunk_size: int = 50_000
) -> Iterator[list[EventRecord]]:
    """Non-bot events with ``since <= ts < until`` as ``EventRecord`` chunks, in (ts, id) order."""
    base = Event.objects.filter(is_bot=False)
    if since is not None:
        base = base.filter(ts__gte=since)
    if until is not None:
        base = base.filter(ts__lt=until)
    last: tuple[datetime, int] | None = None
    while True:
        query = base
        if last is not None:
            query = query.filter(Q(ts__gt=last[0]) | Q(ts=last[0], id__gt=last[1]))
        rows = list(query.order_by("ts", "id").values_list(*_RECORD_FIELDS)[:chunk_size])
        if not rows:
            return
        yield [_record(row) for row in rows]
        if len(rows) < chunk_size:
            return
        last = (rows[-1][1], rows[-1][0])


def event_records_by_id(*, event_ids: Sequence[str]) -> list[tuple[str, EventRecord]]:
    """``(event_id, EventRecord)`` of the stored, non-bot events among ``event_ids``, in (ts, id) order
    (ids not in the table are left out)."""
    rows = (
        Event.objects.filter(event_id__in=list(event_ids), is_bot=False)
        .order_by("ts", "id")
        .values_list("event_id", *_RECORD_FIELDS)
    )
    return [(str(row[0]), _record(row[1:])) for row in rows]


def feature_backlog_size() -> int:
    """Accepted events whose online feature update still waits for the catch-up."""
    return FeatureBacklog.objects.count()


# --- Reads for the staff dashboard (bounded: each takes a limit or a time window on an index) -------


@dataclass(frozen=True, slots=True)
class EventSummary:
    event_id: str
    type: str
    ts: datetime
    received_at: datetime
    url: str
    item_id: str
    categories: tuple[str, ...]
    is_bot: bool
    source: str


@dataclass(frozen=True, slots=True)
class QuarantinedSummary:
    id: int
    received_at: datetime
    reason: str
    detail: str
    payload: str
    payload_bytes: int
    user_id: str
    source: str
    replayed_at: datetime | None


def user_events_recent(*, user_id: str, limit: int = 50) -> list[EventSummary]:
    """The visitor's latest events, newest first (index ``event_user_ts``)."""
    rows = (
        Event.objects.filter(user_id=user_id)
        .order_by("-ts", "-id")
        .values_list("event_id", "type", "ts", "received_at", "url", "item_id", "categories", "is_bot", "source")[
            :limit
        ]
    )
    return [
        EventSummary(str(eid), etype, ts, received, url, item, tuple(cats or ()), bot, source)
        for eid, etype, ts, received, url, item, cats, bot, source in rows
    ]


def quarantined_list(
    *, reason: str | None = None, pending_only: bool = False, limit: int = 50, before_id: int | None = None
) -> list[QuarantinedSummary]:
    """Quarantined input, newest first, ``limit`` at a time (keyset paging on ``id``)."""
    query = QuarantinedEvent.objects.all()
    if reason:
        query = query.filter(reason=reason)
    if pending_only:
        query = query.filter(replayed_at__isnull=True)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    rows = query.order_by("-id").values_list(
        "id", "received_at", "reason", "detail", "payload", "payload_bytes", "user_id", "source", "replayed_at"
    )[:limit]
    return [QuarantinedSummary(*row) for row in rows]


def quarantine_reasons(*, since: datetime | None = None) -> dict[str, int]:
    """Quarantined rows by reason (received at or after ``since`` when given)."""
    query = QuarantinedEvent.objects.all()
    if since is not None:
        query = query.filter(received_at__gte=since)
    return {
        row["reason"]: row["n"] for row in query.values("reason").annotate(n=Count("id")).order_by("reason")
    }


def traffic_counts_by_minute(*, since: datetime, until: datetime) -> list[tuple[datetime, str, str, int]]:
    """``(minute, metric, label, count)`` for events received in ``[since, until)``: ``events`` by type
    (people), ``bots`` by type, ``quarantined`` by reason. Two grouped queries on received_at indexes."""
    from django.db.models.functions import TruncMinute

    out: list[tuple[datetime, str, str, int]] = []
    events = (
        Event.objects.filter(received_at__gte=since, received_at__lt=until)
        .annotate(minute=TruncMinute("received_at"))
        .values("minute", "type", "is_bot")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in events:
        out.append((row["minute"], "bots" if row["is_bot"] else "events", row["type"], row["n"]))
    quarantined = (
        QuarantinedEvent.objects.filter(received_at__gte=since, received_at__lt=until)
        .annotate(minute=TruncMinute("received_at"))
        .values("minute", "reason")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in quarantined:
        out.append((row["minute"], "quarantined", row["reason"], row["n"]))
    return out


def ledger_counters() -> dict[str, int]:
    """The ledger's monotonic counters only (received, duplicates, dropped_for_privacy, deleted, ...):
    no table counts, so it is cheap enough to sample every few seconds. Redis errors propagate."""
    counters = {name: int(value) for name, value in LedgerCounter.objects.values_list("name", "value")}
    if buffer_enabled():
        for name, value in ledger_counts_redis().items():
            counters[name] = counters.get(name, 0) + int(value)
    return counters


def events_recorded() -> bool:
    """Whether any event has been stored yet (one indexed probe, not a count)."""
    return Event.objects.exists()


@dataclass(frozen=True, slots=True)
class AnalyticsEvent:
    """What the site analytics rollup reads of one stored, non-bot event."""

    user_id: str
    session_id: str
    type: str
    ts: datetime
    url: str
    referrer: str
    item_id: str
    categories: list[str]
    properties: dict[str, Any]
    user_agent: str
    ad: dict[str, Any] | None


def analytics_events_iter(*, since: datetime, until: datetime, chunk_size: int = 5000) -> Iterator[AnalyticsEvent]:
    """Non-bot events with EVENT time in ``[since, until)``, by visitor then time (the ``ts`` index
    bounds the read; rows stream in chunks). Only the JSON the rollup reads of each type is decoded:
    ``categories`` of page views, ``properties`` of pings, ``ad`` of ad events (empty otherwise)."""
    from django.db.models import TextField
    from django.db.models.functions import Cast

    rows = (
        Event.objects.filter(ts__gte=since, ts__lt=until, is_bot=False)
        .order_by("user_id", "ts", "id")
        # the JSON columns as text: decoding all three for every row was a third of a day's recount
        .annotate(
            categories_text=Cast("categories", TextField()),
            properties_text=Cast("properties", TextField()),
            ad_text=Cast("ad", TextField()),
        )
        .values_list(
            "user_id", "session_id", "type", "ts", "url", "referrer", "item_id", "categories_text",
            "properties_text", "user_agent", "ad_text",
        )
    )
    for user_id, session_id, type_, ts, url, referrer, item_id, categories, properties, agent, ad in rows.iterator(
        chunk_size=chunk_size
    ):
        yield AnalyticsEvent(
            user_id, session_id, type_, ts, url, referrer, item_id,
            _json_or(categories, []) if type_ == "page_view" else [],
            _json_or(properties, {}) if type_ == "page_ping" else {},
            agent,
            _json_or(ad, None) if type_ in ("ad_impression", "ad_click") else None,
        )


def _json_or(text: str | None, empty: Any) -> Any:
    if not text:
        return empty
    try:
        return json.loads(text)
    except ValueError:
        return empty


def event_days_received(*, since: datetime, until: datetime) -> list[date]:
    """The UTC days of EVENT time of the events received in ``[since, until)`` (the received_at index):
    the days whose analytics a late or imported batch changed."""
    from django.db.models.functions import TruncDate

    return sorted(
        day
        for day in Event.objects.filter(received_at__gte=since, received_at__lt=until)
        .annotate(day=TruncDate("ts"))
        .values_list("day", flat=True)
        .distinct()
        .order_by()
        if day is not None
    )
