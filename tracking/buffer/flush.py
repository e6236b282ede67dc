"""The flush: entries read from the streams, stored in batches on PostgreSQL, acknowledged; the unstorable
parked in quarantine."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.db import DatabaseError, InterfaceError, OperationalError, transaction

from tracking.buffer.consumers import _dead_claim, _group_ensure, _lease_key, _own_pending, consumer_name
from tracking.buffer.forget import _forgotten_filter
from tracking.buffer.streams import PARKED_REASON, _text, redis_client, shards
from tracking.conf import tracking_settings
from tracking.models import QuarantinedEvent
from tracking.storage import ROW_FIELDS, Row, events_insert, ledger_add, received_at_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FlushResult:
    batches: int
    entries: int
    inserted: int
    duplicates: int
    reclaimed: int
    # of ``reclaimed``: taken over at once from consumers whose process is gone
    reclaimed_dead: int = 0
    # entries that could never be stored (a value the database refuses), parked in quarantine
    parked: int = 0



def _rows_store(rows: list[Row], *, reclaimed: bool) -> tuple[set[str], int]:
    """Insert rows on the caller's transaction; return (ids inserted, duplicates)."""
    inserted = events_insert(rows)
    conflicts = [row for row in rows if row[0] not in inserted]
    duplicates = 0
    if conflicts:
        stored = received_at_of(row[0] for row in conflicts)
        seen: set[str] = set()
        for row in conflicts:
            own = datetime.fromtimestamp(row[5] / 1_000_000, tz=UTC)
            # A reclaimed entry whose row is already there with the same receive time is our own
            # earlier insert (a flush killed before its ack): not a duplicate. Anything else is a
            # copy the dedupe key did not catch (expired, or written through while Redis was down).
            if reclaimed and stored.get(row[0]) == own and row[0] not in seen:
                seen.add(row[0])
                continue
            duplicates += 1
        ledger_add({"duplicates": duplicates})
    return inserted, duplicates


def _refused(exc: DatabaseError) -> bool:
    """A database error about the data (a value refused), not about reaching the database."""
    return not isinstance(exc, OperationalError | InterfaceError)


def _entry_row(fields: dict[bytes, bytes]) -> Row | None:
    try:
        row = tuple(json.loads(fields[b"e"]))
    except (KeyError, ValueError, TypeError):
        return None
    return row if len(row) == len(ROW_FIELDS) else None


def _parked(raw: bytes, row: Row | None, detail: str) -> QuarantinedEvent:
    """The quarantine row of a buffered entry that cannot be stored (replayable when it is an event)."""
    if row is None:
        return QuarantinedEvent(
            received_at=datetime.now(tz=UTC),
            reason=PARKED_REASON,
            detail=detail[:1000],
            payload=raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")[:65_536],
            payload_bytes=len(raw),
            source="api",
        )
    named = dict(zip(ROW_FIELDS, row, strict=True))
    event = {key: named[key] for key in ("event_id", "type", "user_id", "session_id", "ts", "url", "referrer",
                                         "item_id")}
    event["categories"] = json.loads(named["categories"] or "[]")
    event["properties"] = json.loads(named["properties"] or "{}")
    if named["ad"]:
        event["ad"] = json.loads(named["ad"])
    payload = json.dumps(event, ensure_ascii=False)
    return QuarantinedEvent(
        received_at=datetime.fromtimestamp(int(named["received_at"]) / 1_000_000, tz=UTC),
        reason=PARKED_REASON,
        detail=detail[:1000],
        payload=payload.replace("\x00", "\\x00")[:65_536],
        payload_bytes=len(payload.encode()),
        user_id=str(named["user_id"])[:64].replace("\x00", ""),
        source=str(named["source"])[:16],
        user_agent=str(named["user_agent"])[:512].replace("\x00", ""),
        ip=str(named["ip"])[:64].replace("\x00", ""),
    )


def _batch_store(
    entries: list[tuple[bytes, dict[bytes, bytes]]], *, reclaimed: bool, client: redis.Redis | None = None
) -> tuple[int, int, int]:
    """Insert one batch in one transaction; return (inserted, duplicates, parked).

    A batch the database refuses (a value it will not take: poison, not an outage) is stored again
    row by row, each in a savepoint; a row refused on its own, or an entry that is not a row at all,
    is parked in quarantine (reason ``unstorable``, visible on the dashboard's data-quality page and
    replayable) so that it stops blocking the buffer. Errors reaching the database propagate: the
    batch stays pending and is retried. With ``client``, rows of a visitor deleted after they were
    received are dropped (``stream_forget``) and counted as deleted.
    """
    rows: list[Row] = []
    unreadable: list[QuarantinedEvent] = []
    for entry_id, fields in entries:
        row = _entry_row(fields)
        if row is None:
            unreadable.append(_parked(fields.get(b"e", b""), None, f"stream entry {_text(entry_id)} is not a row"))
        else:
            rows.append(row)
    dropped = 0
    if client is not None:
        kept = _forgotten_filter(client, rows)
        dropped, rows = len(rows) - len(kept), kept
    try:
        with transaction.atomic():
            if dropped:  # a deleted visitor's: counted as deleted (with the batch), so the ledger reconciles
                ledger_add({"deleted": dropped})
            inserted, duplicates = _rows_store(rows, reclaimed=reclaimed)
            if unreadable:
                QuarantinedEvent.objects.bulk_create(unreadable)
        parked = unreadable
    except DatabaseError as exc:
        if not _refused(exc):
            raise
        with transaction.atomic():
            if dropped:
                ledger_add({"deleted": dropped})
            inserted, duplicates, parked = set(), 0, list(unreadable)
            for row in rows:
                try:
                    with transaction.atomic():
                        one, dup = _rows_store([row], reclaimed=reclaimed)
                except DatabaseError as row_exc:
                    if not _refused(row_exc):
                        raise
                    parked.append(_parked(b"", row, f"{type(row_exc).__name__}: {row_exc}"))
                    continue
                inserted |= one
                duplicates += dup
            QuarantinedEvent.objects.bulk_create(parked)
    if parked:
        logger.error(
            "tracking.flush_parked %d entries the database refuses (quarantine reason %r)",
            len(parked), PARKED_REASON,
        )
    return len(inserted), duplicates, len(parked)


def stream_flush(
    *,
    batch_size: int | None = None,
    reclaim_idle_ms: int | None = None,
    max_batches: int | None = None,
    after_insert: Callable[[int], object] | None = None,
    shard: int | None = None,
) -> FlushResult:
    """Drain the buffer into the Event table in batches; safe to run twice and to kill at any point.
    ``shard``: that shard's stream only (a flush per shard); default: every shard, one after another.

    Order: this process's own unacknowledged entries (a flush here that failed halfway), entries held
    by dead consumers (at once), entries idle with any consumer for ``reclaim_idle_ms``
    (``XAUTOCLAIM``), then new ones.

    ``after_insert(entries)`` runs after each batch committed and before it is acknowledged (the
    fault tests kill the process there to show that a flush killed halfway loses nothing).
    """
    streams = [s.stream for s in shards()]
    totals = [0] * len(dataclasses.fields(FlushResult))
    for stream in streams if shard is None else [streams[shard]]:
        result = _stream_flush(stream, batch_size, reclaim_idle_ms, max_batches, after_insert)
        totals = [a + b for a, b in zip(totals, dataclasses.astuple(result), strict=True)]
    return FlushResult(*totals)


def _stream_flush(
    stream: str,
    batch_size: int | None,
    reclaim_idle_ms: int | None,
    max_batches: int | None,
    after_insert: Callable[[int], object] | None,
) -> FlushResult:
    conf = tracking_settings()
    batch_size = batch_size or int(conf.FLUSH_BATCH)
    idle = int(conf.FLUSH_RECLAIM_IDLE_MS if reclaim_idle_ms is None else reclaim_idle_ms)
    lease_ms = int(conf.FLUSH_LEASE_MS)
    client = redis_client(socket_timeout=30.0)
    group = conf.STREAM_GROUP
    consumer = consumer_name()
    lease = _lease_key(stream, consumer)
    _group_ensure(client, stream, group)
    batches = entries_total = inserted_total = duplicates_total = reclaimed_total = dead_total = 0
    parked_total = 0
    reclaim_own = reclaim_dead = reclaim = True
    while max_batches is None or batches < max_batches:
        client.set(lease, "1", px=lease_ms)
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        reclaimed = False
        if reclaim_own:
            # this process's own pending entries: an earlier flush here failed halfway (Redis or the
            # database went away mid-batch); nobody else is working on them, so they go first
            entries = _own_pending(client, stream, group, consumer, batch_size)
            reclaimed = reclaim_own = bool(entries)
        if not entries and reclaim_dead:
            entries = _dead_claim(client, stream, group, consumer, batch_size)
            reclaimed = reclaim_dead = bool(entries)
            dead_total += len(entries)
        if not entries and reclaim:
            claimed = client.xautoclaim(
                stream, group, consumer, min_idle_time=idle, start_id="0-0", count=batch_size
            )
            entries = list(claimed[1])  # type: ignore[arg-type]
            reclaimed = bool(entries)
            reclaim = reclaimed  # keep reclaiming until nothing idle is left, then read new entries
        if not entries:
            response = client.xreadgroup(group, consumer, {stream: ">"}, count=batch_size)
            entries = list(response[0][1]) if response else []  # type: ignore[index,arg-type]
        if not entries:
            break
        inserted, duplicates, parked = _batch_store(entries, reclaimed=reclaimed, client=client)
        if after_insert is not None:
            after_insert(len(entries))
        ids = [entry_id for entry_id, _fields in entries]
        pipe = client.pipeline(transaction=True)
        pipe.xack(stream, group, *ids)
        pipe.xdel(stream, *ids)
        pipe.execute()
        batches += 1
        entries_total += len(entries)
        inserted_total += inserted
        duplicates_total += duplicates
        parked_total += parked
        reclaimed_total += len(entries) if reclaimed else 0
    client.delete(lease)
    if entries_total:
        logger.info(
            "tracking.flushed",
            extra={"entries": entries_total, "inserted": inserted_total, "duplicates": duplicates_total},
        )
    return FlushResult(
        batches, entries_total, inserted_total, duplicates_total, reclaimed_total, dead_total, parked_total
    )
