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
one or two seconds of events (a process kill too, while the disk is slow to sync); ``appendfsync always``
loses nothing Redis acknowledged (README, "Durability of the event buffer").

Split along its seams: ``streams`` (shards, the atomic append, counters), ``forget`` (a deleted
visitor's buffered events), ``consumers`` (the flush group's consumers and pending entries), ``flush``
(stored in batches, acknowledged, the unstorable parked). Callers import from ``tracking.buffer``.
"""

from __future__ import annotations

from tracking.buffer.consumers import PendingHolder, consumer_name, pending_holders
from tracking.buffer.flush import FlushResult, stream_flush
from tracking.buffer.forget import FORGET_TTL_S, stream_forget
from tracking.buffer.streams import (
    APPEND_SCRIPT,
    PARKED_REASON,
    BufferPartlyAppended,
    Shard,
    buffer_enabled,
    dedupe_key,
    ledger_counts_redis,
    redis_client,
    shard_of,
    shards,
    stream_append,
    stream_length,
)

__all__ = [
    "APPEND_SCRIPT",
    "FORGET_TTL_S",
    "PARKED_REASON",
    "BufferPartlyAppended",
    "FlushResult",
    "PendingHolder",
    "Shard",
    "buffer_enabled",
    "consumer_name",
    "dedupe_key",
    "ledger_counts_redis",
    "pending_holders",
    "redis_client",
    "shard_of",
    "shards",
    "stream_append",
    "stream_flush",
    "stream_forget",
    "stream_length",
]
