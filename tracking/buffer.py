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
* Entries held by a flush that died are taken over at once, not after ``FLUSH_RECLAIM_IDLE_MS``: each
  consumer is named ``<host>-<pid>`` and renews a lease key (``<stream>:lease:<consumer>``, expiring
  after ``FLUSH_LEASE_MS``) before each batch; a consumer whose process is gone (same host: no such
  pid) or whose lease expired (another host) is dead, and the next flush claims its entries first and
  removes it from the group once it holds nothing. A flush that failed halfway in a process that lives
  on (Redis or the database went away mid-batch) leaves the entries with that process's own consumer:
  its next flush reads them first (``XREADGROUP`` from id 0). The idle time stays the rule for a
  consumer that looks alive (a pid reused, a lease still running).
* The client uses short socket timeouts and no retries: an unreachable Redis is noticed in well under
  a second.

Shards (``TRACKING["STREAM_SHARDS"]``, 8 in the scale-out mode): the buffer is that many streams, and an
event goes to shard ``crc32(event_id) % STREAM_SHARDS``, so every copy of one event meets the same
dedupe key. Each shard's stream, its dedupe keys and its ledger counters share one hash slot (the tag
``{<STREAM_KEY>:<shard>}``), so the append script stays atomic on a Redis Cluster, and the shards spread
over its masters. With one shard on one Redis the names are the unsharded ones (``STREAM_KEY``,
``LEDGER_KEY``, ``DEDUPE_PREFIX``). A batch spanning shards is one script per shard (one round trip per
node); should some shards fail, ``BufferPartlyAppended`` carries what they did take and the rows they
did not, which the caller writes through to the database. The ledger counters are summed over the
shards; each shard is flushed by a flush of its own (``stream_flush(shard=...)``; the
``tracking.flush_events`` task sends one task per shard), with its own consumer group.

Durability: the buffer is as durable as the Redis persistence settings. Without persistence a Redis
restart loses buffered, unflushed events; ``appendonly yes`` + ``appendfsync everysec`` bounds that to
about one second of events.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from django.db import DatabaseError, InterfaceError, OperationalError, transaction

from inference import api as inference_api
from tracking.conf import tracking_settings
from tracking.models import QuarantinedEvent
from tracking.storage import ROW_FIELDS, Row, events_insert, ledger_add, received_at_of

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

# Quarantine reason of buffered entries the database refuses (see ``_batch_store``).
PARKED_REASON = "unstorable"


@dataclass(frozen=True, slots=True)
class Shard:
    """One stream of the buffer and the keys in its hash slot."""

    index: int
    stream: str
    ledger: str
    dedupe_prefix: str


def shards() -> list[Shard]:
    """The buffer's shards (see the module docstring)."""
    conf = tracking_settings()
    count = max(1, int(conf.STREAM_SHARDS))
    if count == 1 and not inference_api.cluster_mode():
        return [Shard(0, conf.STREAM_KEY, conf.LEDGER_KEY, conf.DEDUPE_PREFIX)]
    tags = [f"{{{conf.STREAM_KEY}:{i}}}" for i in range(count)]
    return [Shard(i, tag, f"{tag}:ledger", f"{tag}:dedupe:") for i, tag in enumerate(tags)]


def shard_of(event_id: str, count: int) -> int:
    """The shard of an event (stable across processes and hosts)."""
    return zlib.crc32(event_id.encode()) % count if count > 1 else 0


class BufferPartlyAppended(redis.RedisError):
    """Some shards took their rows, others could not be reached: ``new_ids`` the ids the buffer took as
    new, ``rows`` the rows it did not take (to be written through)."""

    def __init__(self, new_ids: set[str], rows: list[Row], cause: Exception) -> None:
        super().__init__(f"{len(rows)} events not buffered: {cause}")
        self.new_ids = new_ids
        self.rows = rows


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
    """Append new rows to the buffer (deduped on event_id, per shard); return the ids that were new.

    Raises ``redis.RedisError`` (connection refused, timeout, ...) when Redis cannot take them, and
    ``BufferPartlyAppended`` when only some shards could (see the module docstring).
    """
    conf = tracking_settings()
    all_shards = shards()
    by_shard: dict[int, list[Row]] = {}
    for row in rows:
        by_shard.setdefault(shard_of(str(row[0]), len(all_shards)), []).append(row)
    calls: list[tuple[Shard, list[Row], list[str | int]]] = []
    for index, shard_rows in sorted(by_shard.items()):
        shard = all_shards[index]
        args: list[str | int] = [int(conf.DEDUPE_TTL_SECONDS), shard.dedupe_prefix]
        for row in shard_rows:
            args.append(row[0])
            args.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
        calls.append((shard, shard_rows, args))
    client = redis_client()
    if len(calls) == 1:
        shard, _, args = calls[0]
        new = client.eval(APPEND_SCRIPT, 2, shard.stream, shard.ledger, *args)
        return {_text(item) for item in new}
    pipe = client.pipeline(transaction=False)
    for shard, _, args in calls:
        # EVAL as a command: a cluster pipeline's eval() is not the script call
        pipe.execute_command("EVAL", APPEND_SCRIPT, 2, shard.stream, shard.ledger, *args)
    try:
        replies = pipe.execute(raise_on_error=False)
    except redis.RedisError:
        raise  # nothing is known to have been taken: the caller writes the whole batch through
    new_ids: set[str] = set()
    missed: list[Row] = []
    cause: Exception | None = None
    for (_, shard_rows, _), reply in zip(calls, replies, strict=True):
        if isinstance(reply, Exception):
            missed.extend(shard_rows)
            cause = reply
        else:
            new_ids.update(_text(item) for item in reply)
    if cause is not None:
        if not new_ids and len(missed) == len(rows):
            raise cause
        raise BufferPartlyAppended(new_ids, missed, cause)
    return new_ids


def ledger_counts_redis() -> dict[str, int]:
    """The ledger counters kept in Redis (services mode), e.g. ``received``, ``duplicates``, summed
    over the shards."""
    client = redis_client(socket_timeout=5.0)
    pipe = client.pipeline(transaction=False)
    for shard in shards():
        pipe.hgetall(shard.ledger)
    counts: dict[str, int] = {}
    for raw in pipe.execute():
        for key, value in raw.items():
            counts[_text(key)] = counts.get(_text(key), 0) + int(value)
    return counts


def stream_length() -> int:
    """Entries in the buffer not yet flushed (pending ones included), over all shards."""
    pipe = redis_client(socket_timeout=5.0).pipeline(transaction=False)
    for shard in shards():
        pipe.xlen(shard.stream)
    return sum(int(n) for n in pipe.execute())


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


@dataclass(frozen=True, slots=True)
class PendingHolder:
    """Entries delivered to one flush consumer and not yet acknowledged."""

    consumer: str
    pending: int
    idle_ms: int
    alive: bool


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
    return sum(_shard_forget(client, shard.stream, conf.STREAM_GROUP, user_id) for shard in shards())


def _shard_forget(client: redis.Redis, stream: str, group: str, user_id: str) -> int:
    removed = 0
    start = "-"
    while True:
        chunk: list[Any] = list(client.xrange(stream, min=start, max="+", count=1000))  # type: ignore[arg-type]
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
            pipe = client.pipeline(transaction=not inference_api.cluster_mode())  # one key: one slot
            pipe.xack(stream, group, *doomed)
            pipe.xdel(stream, *doomed)
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
    pipe = client.pipeline(transaction=False)  # one GET per visitor: their keys lie in many slots
    for user in users:
        pipe.get(_forgotten_key(user))
    stamps = pipe.execute()
    deleted_at = {user: int(stamp) for user, stamp in zip(users, stamps, strict=True) if stamp is not None}
    if not deleted_at:
        return rows
    return [row for row in rows if not (str(row[2]) in deleted_at and int(row[5]) <= deleted_at[str(row[2])])]


def consumer_name() -> str:
    """This process's consumer name in the flush group: ``<host>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _lease_key(stream: str, consumer: str) -> str:
    return f"{stream}:lease:{consumer}"


def _pid_running(pid: int) -> bool:
    """True if ``pid`` names a live process here (a zombie, killed and not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True  # no /proc: trust kill(0)


def _consumer_alive(client: redis.Redis, stream: str, name: str) -> bool:
    host, _, pid = name.rpartition("-")
    if host == socket.gethostname() and pid.isdigit():
        return _pid_running(int(pid))
    return bool(client.exists(_lease_key(stream, name)))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def pending_holders(*, client: redis.Redis | None = None, stream: str | None = None) -> list[PendingHolder]:
    """Who holds delivered, unacknowledged entries of the buffer (of one shard's ``stream``; default:
    every shard, a consumer listed once per shard it holds entries of), and whether each is alive."""
    conf = tracking_settings()
    client = client or redis_client(socket_timeout=5.0)
    if stream is None:
        return [holder for shard in shards() for holder in pending_holders(client=client, stream=shard.stream)]
    group = conf.STREAM_GROUP
    try:
        consumers = client.xinfo_consumers(stream, group)
    except redis.ResponseError:  # no stream or no group yet
        return []
    holders = []
    for info in consumers:
        name = _text(info["name"])
        holders.append(
            PendingHolder(
                consumer=name,
                pending=int(info["pending"]),
                idle_ms=int(info["idle"]),
                alive=_consumer_alive(client, stream, name),
            )
        )
    return holders


def _own_pending(
    client: redis.Redis, stream: str, group: str, consumer: str, count: int
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Entries delivered to this consumer and never acknowledged (deleted ones are acknowledged away)."""
    while True:
        response = client.xreadgroup(group, consumer, {stream: "0"}, count=count)
        entries = list(response[0][1]) if response else []  # type: ignore[index,arg-type]
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:
            client.xack(stream, group, *gone)
        live = [(entry_id, fields) for entry_id, fields in entries if fields]
        if live or not gone:
            return live


def _dead_claim(
    client: redis.Redis, stream: str, group: str, consumer: str, count: int
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Claim up to ``count`` entries held by dead consumers; forget dead consumers that hold none."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = []
    for holder in pending_holders(client=client, stream=stream):
        if holder.consumer == consumer or holder.alive:
            continue
        if holder.pending == 0:
            # a dead consumer holding nothing: remove it so the group does not grow with every pid
            client.xgroup_delconsumer(stream, group, holder.consumer)
            continue
        if len(entries) >= count:
            continue
        pending = client.xpending_range(
            stream, group, min="-", max="+", count=count - len(entries), consumername=holder.consumer
        )
        ids = [item["message_id"] for item in pending]
        if ids:
            logger.warning(
                "tracking.flush_dead_consumer %s held %d entries: taken over",
                holder.consumer, len(ids),
            )
            # entries deleted meanwhile come back as nothing and leave the pending list
            claimed = client.xclaim(stream, group, consumer, min_idle_time=0, message_ids=ids)
            entries.extend(entry for entry in claimed if entry and entry[1])  # type: ignore[misc]
    return entries


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
