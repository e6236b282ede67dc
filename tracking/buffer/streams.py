"""The buffer's streams: the shards, the atomic append (dedupe, stream, counters) and what they hold."""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from inference import api as inference_api
from tracking.conf import tracking_settings
from tracking.storage import Row

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


def dedupe_key(event_id: str) -> str:
    """The Redis key that remembers ``event_id`` for ``DEDUPE_TTL_SECONDS`` (in its shard's hash slot)."""
    all_shards = shards()
    return all_shards[shard_of(event_id, len(all_shards))].dedupe_prefix + event_id


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


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
