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

``event_records_iter`` streams non-bot events in (ts, id) order with keyset pagination, so memory
stays bounded by ``chunk_size`` however many events there are.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import Count, Q

from inference.events import EventRecord
from tracking.bots import user_agent_device
from tracking.buffer import buffer_enabled, ledger_counts_redis, stream_length
from tracking.models import Event, LedgerCounter, QuarantinedEvent

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
