"""Where accepted events go first: the Redis Stream buffer (services mode) and its flush.

Promises:

* ``stream_append`` runs one Lua script (atomic in Redis): per event ``SET dedupe:<id> 1 NX EX ttl``
  and, only if the key was new, ``XADD`` the row to the stream; then ``HINCRBY`` the ledger hash
  (``received``, ``duplicates``). A Redis that fails before the script runs leaves nothing behind;
  the caller then writes through to the database, so an answer of "accepted" is never followed by loss.
* ``stream_flush`` drains the stream through a consumer group into the ``Event`` table: reclaimed
  entries first (``XAUTOCLAIM``: a flush killed halfway leaves its batch pending), then new ones;
  each batch is inserted with ``ON CONFLICT DO NOTHING`` (idempotent) and only then ``XACK`` +
  ``XDEL``. Killed anywhere, nothing is lost (entries stay pending) and nothing is stored twice.
* The client uses short socket timeouts and no retries: an unreachable Redis is noticed in well under
  a second.

Durability: the buffer is as durable as the Redis persistence settings. Without persistence a Redis
restart loses buffered, unflushed events; ``appendonly yes`` + ``appendfsync everysec`` bounds that to
about one second of events.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from django.db import transaction

from inference import api as inference_api
from tracking.conf import tracking_settings
from tracking.storage import Row, events_insert, ledger_add, received_at_of

logger = logging.getLogger(__name__)

# KEYS[1] stream, KEYS[2] ledger hash; ARGV[1] dedupe ttl, ARGV[2] dedupe key prefix,
# then (event_id, payload) pairs. Returns the ids that were new (appended to the stream).
APPEND_SCRIPT = """
local new = {}
local dup = 0
for i = 3, #ARGV, 2 do
  if redis.call('SET', ARGV[2] .. ARGV[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i + 1])
    new[#new + 1] = ARGV[i]
  else
    dup = dup + 1
  end
end
redis.call('HINCRBY', KEYS[2], 'received', (#ARGV - 2) / 2)
if dup > 0 then
  redis.call('HINCRBY', KEYS[2], 'duplicates', dup)
end
return new
"""



def buffer_enabled() -> bool:
    """True in services mode (``TRACKING["BUFFER"] == "redis"`` and a Redis URL)."""
    conf = tracking_settings()
    return conf.BUFFER == "redis" and bool(conf.REDIS_URL)


def redis_client(*, socket_timeout: float | None = None) -> redis.Redis:
    """The buffer's Redis client (``inference.api.redis_client``: guarded, no retries), with the
    collect path's short timeout (``TRACKING["REDIS_SOCKET_TIMEOUT"]``) unless ``socket_timeout`` is given."""
    conf = tracking_settings()
    timeout = conf.REDIS_SOCKET_TIMEOUT if socket_timeout is None else socket_timeout
    return inference_api.redis_client(str(conf.REDIS_URL), timeout=float(timeout))


def stream_append(rows: Sequence[Row]) -> set[str]:
    """Append new rows to the stream (deduped on event_id); return the ids that were new.

    Raises ``redis.RedisError`` (connection refused, timeout, ...) when Redis cannot take them.
    """
    conf = tracking_settings()
    args: list[str | int] = [int(conf.DEDUPE_TTL_SECONDS), conf.DEDUPE_PREFIX]
    for row in rows:
        args.append(row[0])
        args.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    client = redis_client()
    new = client.eval(APPEND_SCRIPT, 2, conf.STREAM_KEY, conf.LEDGER_KEY, *args)
    return {item.decode() if isinstance(item, bytes) else str(item) for item in new}


def ledger_counts_redis() -> dict[str, int]:
    """The ledger counters kept in Redis (services mode), e.g. ``received``, ``duplicates``."""
    conf = tracking_settings()
    raw = redis_client(socket_timeout=5.0).hgetall(conf.LEDGER_KEY)
    return {(key.decode() if isinstance(key, bytes) else key): int(value) for key, value in raw.items()}


def stream_length() -> int:
    """Entries in the stream not yet flushed (pending ones included)."""
    return int(redis_client(socket_timeout=5.0).xlen(tracking_settings().STREAM_KEY))


@dataclass(frozen=True, slots=True)
class FlushResult:
    batches: int
    entries: int
    inserted: int
    duplicates: int
    reclaimed: int


def _group_ensure(client: redis.Redis, stream: str, group: str) -> None:
    try:
        # From id 0: entries appended before the group existed are flushed too.
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


FORGET_TTL_S = 7 * 24 * 3600  # how long a deleted visitor's tombstone stops their buffered events


def _forgotten_key(user_id: str) -> str:
    return f"{tracking_settings().STREAM_KEY}:forgotten:{user_id}"


def stream_forget(user_id: str, *, now_us: int) -> int:
    """Delete a visitor's events still in the buffer (the privacy operation); the number removed.

    Leaves a tombstone (the deletion time) that ``stream_flush`` honours, so that events a flush had
    already read when this ran, or that were received before the deletion and are appended later (a
    retry), never reach the table. Events received after the deletion are stored as usual.
    """
    conf = tracking_settings()
    client = redis_client(socket_timeout=5.0)
    client.set(_forgotten_key(user_id), now_us, ex=FORGET_TTL_S)
    removed = 0
    start = "-"
    while True:
        chunk: list[Any] = list(client.xrange(conf.STREAM_KEY, min=start, max="+", count=1000))  # type: ignore[arg-type]
        if not chunk:
            return removed
        doomed: list[bytes] = []
        for entry_id, fields in chunk:
            try:
                row = json.loads(fields[b"e"])
            except (KeyError, TypeError, ValueError):
                continue
            if row[2] == user_id:
                doomed.append(entry_id)
        if doomed:
            pipe = client.pipeline(transaction=True)
            pipe.xack(conf.STREAM_KEY, conf.STREAM_GROUP, *doomed)
            pipe.xdel(conf.STREAM_KEY, *doomed)
            pipe.execute()
            removed += len(doomed)
        last = chunk[-1][0].decode() if isinstance(chunk[-1][0], bytes) else str(chunk[-1][0])
        start = "(" + last
        if len(chunk) < 1000:
            return removed


def _forgotten_filter(client: redis.Redis, rows: list[Row]) -> list[Row]:
    """Rows whose visitor was deleted after they were received are dropped (see ``stream_forget``)."""
    users = sorted({str(row[2]) for row in rows})
    if not users:
        return rows
    stamps = client.mget([_forgotten_key(user) for user in users])
    deleted_at = {user: int(stamp) for user, stamp in zip(users, stamps, strict=True) if stamp is not None}
    if not deleted_at:
        return rows
    return [row for row in rows if not (str(row[2]) in deleted_at and int(row[5]) <= deleted_at[str(row[2])])]


def _batch_store(
    entries: list[tuple[bytes, dict[bytes, bytes]]], *, reclaimed: bool, client: redis.Redis | None = None
) -> tuple[int, int]:
    """Insert one batch in one transaction; return (inserted, duplicates)."""
    rows: list[Row] = [
        tuple(json.loads(fields[b"e"])) for _entry_id, fields in entries if fields and b"e" in fields
    ]
    dropped = 0
    if client is not None:
        kept = _forgotten_filter(client, rows)
        dropped, rows = len(rows) - len(kept), kept
    with transaction.atomic():
        if dropped:
            ledger_add({"deleted": dropped})  # a deleted visitor's: counted as deleted, so the ledger reconciles
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
    return len(inserted), duplicates


def stream_flush(
    *,
    batch_size: int | None = None,
    reclaim_idle_ms: int | None = None,
    max_batches: int | None = None,
    after_insert: Callable[[int], object] | None = None,
) -> FlushResult:
    """Drain the stream into the Event table in batches; safe to run twice and to kill at any point.

    ``after_insert(entries)`` runs after each batch committed and before it is acknowledged (the
    fault tests kill the process there to show that a flush killed halfway loses nothing)."""
    conf = tracking_settings()
    batch_size = batch_size or int(conf.FLUSH_BATCH)
    idle = int(conf.FLUSH_RECLAIM_IDLE_MS if reclaim_idle_ms is None else reclaim_idle_ms)
    client = redis_client(socket_timeout=30.0)
    stream, group = conf.STREAM_KEY, conf.STREAM_GROUP
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    _group_ensure(client, stream, group)
    batches = entries_total = inserted_total = duplicates_total = reclaimed_total = 0
    reclaim = True
    while max_batches is None or batches < max_batches:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        reclaimed = False
        if reclaim:
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
        inserted, duplicates = _batch_store(entries, reclaimed=reclaimed, client=client)
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
        reclaimed_total += len(entries) if reclaimed else 0
    if entries_total:
        logger.info(
            "tracking.flushed",
            extra={"entries": entries_total, "inserted": inserted_total, "duplicates": duplicates_total},
        )
    return FlushResult(batches, entries_total, inserted_total, duplicates_total, reclaimed_total)
