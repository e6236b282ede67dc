"""Redis feature store (services mode): the same operations as the in-process store, applied atomically.

Keys (the ``{user_id}`` hash tag keeps one user in one Redis Cluster slot):

- ``u:{<user_id>}:h`` hash of sums (``HINCRBYFLOAT``; stale decay epochs removed with ``HDEL``),
- ``u:{<user_id>}:m`` sorted set of maxima (``ZADD GT``: an atomic max per member),
- ``u:{<user_id>}:s`` list, the recent sequence (``RPUSH`` + ``LTRIM``),
- ``u:{<user_id>}:x`` sorted set of the latest sessions (``ZADD GT``; older ones pruned with their counters),
- ``g:h`` / ``g:m`` the population's sums and maxima; on a Redis Cluster sharded (every batch writes
  one shard, ``g:{p<i>}:h`` / ``g:{p<i>}:m``, i = crc32(the batch's first user) % ``population_shards``,
  8 by default there), so the population's writes spread over the masters instead of pinning one; a
  read sums the shards' sums and takes the largest maxima, which is what one state would hold (a shard
  drops only decay epochs older than the two the readout uses), and is cached per process for
  ``population_cache_s``.

``observe`` coalesces a batch's operations per user (they commute) and sends them in one pipeline: one
round trip per batch (per master on a Redis Cluster). Each user's operations travel as one ``EVAL`` of a
small script that applies them server-side with the semantics of ``FeatureState.apply``
(``HINCRBYFLOAT``, ``ZADD GT``, ``RPUSH`` + ``LTRIM``, and ``HDEL`` of stale decay epochs and sessions)
and bumps the user's feature version (``VERSION_FIELD``) in the same script: tens of commands per
event, one atomic call per user, on the keys of one slot (``{user_id}``). So the per-visitor update is
atomic on one Redis and on a Redis Cluster alike: a reader sees a visitor's features and their version
move together (a stored answer is never taken as current for features it was not computed from), and
concurrent writers lose no update. On one Redis the pipeline is also one ``MULTI``/``EXEC`` (the whole
batch at once); on a Cluster there is no ``MULTI`` across slots, so a batch cut by a failing master may
be applied for some visitors (each whole) and not others:
the call raises :class:`FeatureStorePartlyApplied` naming the visitors it reached (each whole), and the
collect path keeps only the other visitors' events for the catch-up. The population's shard of that
batch may then miss or repeat the batch's share (a prior, not a visitor's features).
``read`` is one pipelined round trip (``HGETALL`` + ``ZRANGE`` + ``LRANGE``, plus the population
when its per-process copy is older than ``population_cache_s``). Connection failures and timeouts
raise :class:`FeatureStoreUnavailable` at once (short socket timeouts, no retries: a retried
``MULTI`` could apply a batch twice).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

import redis

from inference.events import EventRecord
from inference.features import (
    SEQUENCE_LENGTH,
    SESSIONS_KEPT,
    FeatureState,
    Ops,
    PopulationFeatures,
    SeqItem,
    event_ops,
    population_features,
    user_features,
)
from inference.redis_clients import redis_client
from inference.store.base import FeatureStore, FeatureStorePartlyApplied, FeatureStoreUnavailable, StoreRead

__all__ = ["RedisFeatureStore", "answer_keys", "user_keys"]

# the user's feature version: a counter in the sums hash, bumped with every batch that changes the user
# (stored answers are current only for the version they were computed from; see ``answer_read``)
VERSION_FIELD = "v"

# Applies one state's operations with FeatureState.apply's semantics: KEYS = sums hash, maxima zset[,
# sequence list, sessions zset]; ARGV = cap, ttl, decay records ("label US k US cat US term ..." in
# ascending k), "field US delta" records, "field US value" records, "session US ts" records, sessions
# kept, return masks ("label US w US cat US mask ..." in ascending w; GS stands for the category "")
# (records separated by RS: one string argument per kind keeps the client's encoding cost per batch,
# not per field), then the sequence items.
_APPLY_OPS = r"""
local cap, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
-- the field prefixes ("<tag>:<label>:<j>:") of the kept generations (decay epochs, return words) that a
-- new generation k makes stale, `newest` being the newest before it; nil when none is
local function stale_prefixes(tag, label, newest, k)
  local doomed, any = {}, false
  for j = newest - 1, newest do
    if j < k - 1 then
      doomed[tag .. ':' .. label .. ':' .. string.format('%d', j) .. ':'] = true
      any = true
    end
  end
  if any then return doomed end
  return nil
end
for record in string.gmatch(ARGV[3], '[^\30]+') do
  local parts = {}
  for piece in string.gmatch(record, '[^\31]+') do parts[#parts + 1] = piece end
  local label, k = parts[1], tonumber(parts[2])
  local newest = redis.call('ZSCORE', KEYS[2], 'e:' .. label)
  if newest then newest = tonumber(newest) end
  local keep = true
  if (not newest) or k > newest then
    local doomed = newest and stale_prefixes('d', label, newest, k)
    if doomed then
      local names = {}
      for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
        local prefix = string.match(name, '^d:[^:]+:[^:]+:')
        if prefix and doomed[prefix] then
          names[#names + 1] = name
          if #names == 1000 then
            redis.call('HDEL', KEYS[1], unpack(names))
            names = {}
          end
        end
      end
      if #names > 0 then redis.call('HDEL', KEYS[1], unpack(names)) end
    end
    redis.call('ZADD', KEYS[2], k, 'e:' .. label)
  elseif k < newest - 1 then
    keep = false
  end
  if keep then
    local prefix = 'd:' .. label .. ':' .. parts[2] .. ':'
    for i = 3, #parts, 2 do
      redis.call('HINCRBYFLOAT', KEYS[1], prefix .. parts[i], parts[i + 1])
    end
  end
end
-- a bitwise OR of two masks under 2^30 (with plain arithmetic: not every Lua host has the bit library)
local function bor(a, b)
  local out, place = 0, 1
  while a > 0 or b > 0 do
    if a % 2 == 1 or b % 2 == 1 then out = out + place end
    a, b, place = math.floor(a / 2), math.floor(b / 2), place * 2
  end
  return out
end
for record in string.gmatch(ARGV[8], '[^\30]+') do
  local parts = {}
  for piece in string.gmatch(record, '[^\31]+') do parts[#parts + 1] = piece end
  local label, w = parts[1], tonumber(parts[2])
  local newest = redis.call('ZSCORE', KEYS[2], 'rw:' .. label)
  if newest then newest = tonumber(newest) end
  local keep = true
  if (not newest) or w > newest then
    local doomed = newest and stale_prefixes('r', label, newest, w)
    if doomed then
      local all, names = redis.call('HGETALL', KEYS[1]), {}
      for i = 1, #all, 2 do
        local prefix = string.match(all[i], '^r:[^:]+:[^:]+:')
        if prefix and doomed[prefix] then
          local mask, bits = tonumber(all[i + 1]), 0
          while mask > 0 do
            bits = bits + mask % 2
            mask = math.floor(mask / 2)
          end
          redis.call('HINCRBYFLOAT', KEYS[1], 'ro:' .. label .. ':' .. string.sub(all[i], #prefix + 1), bits)
          names[#names + 1] = all[i]
        end
      end
      for i = 1, #names, 1000 do
        redis.call('HDEL', KEYS[1], unpack(names, i, math.min(i + 999, #names)))
      end
    end
    redis.call('ZADD', KEYS[2], w, 'rw:' .. label)
  elseif w < newest - 1 then
    keep = false
  end
  if keep then
    local prefix = 'r:' .. label .. ':' .. parts[2] .. ':'
    -- the category "" (the user's own buckets) makes the field name end at the prefix
    for i = 3, #parts, 2 do
      local name = prefix .. (parts[i] == '\29' and '' or parts[i])
      local mask = tonumber(redis.call('HGET', KEYS[1], name) or '0')
      redis.call('HSET', KEYS[1], name, string.format('%d', bor(mask, tonumber(parts[i + 1]))))
    end
  end
end
for name, delta in string.gmatch(ARGV[4], '([^\30\31]+)\31([^\30]+)') do
  redis.call('HINCRBYFLOAT', KEYS[1], name, delta)
end
for name, value in string.gmatch(ARGV[5], '([^\30\31]+)\31([^\30]+)') do
  redis.call('ZADD', KEYS[2], 'GT', value, name)
end
if #ARGV > 8 then
  local i = 9
  while i <= #ARGV do
    local upto = math.min(i + 999, #ARGV)
    redis.call('RPUSH', KEYS[3], unpack(ARGV, i, upto))
    i = upto + 1
  end
  redis.call('LTRIM', KEYS[3], -cap, -1)
end
if ARGV[6] ~= '' then
  for name, value in string.gmatch(ARGV[6], '([^\30\31]+)\31([^\30]+)') do
    redis.call('ZADD', KEYS[4], 'GT', value, name)
  end
  local keep = tonumber(ARGV[7])
  local n = redis.call('ZCARD', KEYS[4])
  if n > keep then
    for _, session in ipairs(redis.call('ZRANGE', KEYS[4], 0, n - keep - 1)) do
      redis.call('HDEL', KEYS[1], 'sn:' .. session, 'se:' .. session)
    end
    redis.call('ZREMRANGEBYRANK', KEYS[4], 0, n - keep - 1)
  end
end
if #KEYS == 4 then
  -- a user's state: its feature version moves in the same script, so no reader ever sees new features
  -- under the old version (or the new version over old features), on one Redis or a Cluster alike
  redis.call('HINCRBY', KEYS[1], '@VERSION_FIELD@', 1)
end
if ttl > 0 then
  for k = 1, #KEYS do
    redis.call('EXPIRE', KEYS[k], ttl)
  end
end
return 1
""".replace("@VERSION_FIELD@", VERSION_FIELD)
_RECORD = "\x1e"
_FIELD = "\x1f"
_CATEGORY = "\x1e"
_EMPTY = "\x1d"  # the category "" in a return record (an empty piece would vanish in the script's split)


def user_keys(user_id: str, prefix: str = "") -> tuple[str, str, str, str]:
    """(sums hash, maxima sorted set, sequence list, sessions sorted set) of one user, all in the slot
    of ``{user_id}``."""
    tag = f"{prefix}u:{{{user_id}}}"
    return f"{tag}:h", f"{tag}:m", f"{tag}:s", f"{tag}:x"


def answer_keys(user_id: str, prefix: str = "") -> tuple[str, str]:
    """(stored answer, pending-recompute flag) of one user, in the slot of ``{user_id}``."""
    tag = f"{prefix}u:{{{user_id}}}"
    return f"{tag}:p", f"{tag}:q"


def _encode(item: SeqItem) -> str:
    return f"{item.ts!r}{_FIELD}{item.item_id}{_FIELD}{_CATEGORY.join(item.categories)}{_FIELD}{item.kind}"


# A user's sequence is read again at every request, one new entry at a time: the memo saves re-parsing the
# entries of visitors read moments ago. Every entry carries its timestamp, so each event is a new key and
# the memo fills at the event rate until its bound, ~560 bytes an entry in every process that reads
# features: 8,192 entries (~4.5 MiB, the full sequences of ~160 visitors) keep the hits of a visitor
# read again within seconds (interests, then ad decisions). 65,536 entries held up to ~35 MiB per process,
# mostly of entries long pushed out of every sequence, and took a quarter-hour to fill at the soak's rate.
DECODE_MEMO_ENTRIES = 8192


@lru_cache(maxsize=DECODE_MEMO_ENTRIES)
def _decode(raw: str) -> SeqItem:
    ts, item_id, categories, *kind = raw.split(_FIELD, 3)  # entries written before the type had none
    return SeqItem(
        item_id, tuple(categories.split(_CATEGORY)) if categories else (), float(ts), kind[0] if kind else "page_view"
    )


def _state(
    sums: dict[str, str],
    maxima: list[tuple[str, float]],
    seq: list[str] | None = None,
    sessions: list[tuple[str, float]] | None = None,
) -> FeatureState:
    return FeatureState(
        {name: float(value) for name, value in sums.items() if name != VERSION_FIELD},
        dict(maxima),
        [_decode(raw) for raw in seq] if seq else [],
        dict(sessions) if sessions else {},
    )


class RedisFeatureStore(FeatureStore):
    def __init__(
        self,
        url: str,
        *,
        read_timeout_s: float = 0.05,
        write_timeout_s: float = 2.0,
        population_cache_s: float = 1.0,
        ttl_s: float = 0.0,
        prefix: str = "",
        population_shards: int | None = None,
        client: redis.Redis | None = None,
    ) -> None:
        # ``client``: one given client for reads and writes (the parity tests' fakeredis, which runs the
        # same Lua); otherwise the factory's, one per time-out
        given = client

        def client_for(timeout: float) -> redis.Redis:
            return given if given is not None else redis_client(url, timeout=timeout, decode_responses=True)

        self.url = url
        self._reader = client_for(read_timeout_s)
        self._writer = client_for(write_timeout_s)
        self._prefix = prefix
        self._ttl = int(ttl_s)
        from redis.cluster import RedisCluster

        self._cluster = isinstance(self._writer, RedisCluster)
        shards = population_shards if population_shards is not None else (8 if self._cluster else 1)
        self._population_shards: list[tuple[str, str]] = (
            [(f"{prefix}g:h", f"{prefix}g:m")]
            if shards <= 1 and not self._cluster
            else [(f"{prefix}g:{{p{i}}}:h", f"{prefix}g:{{p{i}}}:m") for i in range(max(1, shards))]
        )
        self._population_cache_s = population_cache_s
        self._cached: tuple[float, PopulationFeatures] | None = None
        self._cache_lock = threading.Lock()

    # -- writes --------------------------------------------------------------------------------
    def _queue(self, pipe: Any, keys: tuple[str, ...], ops: Ops) -> None:
        # field names never contain the separators: categories, types, sessions and devices are
        # validated identifiers by the time they reach inference
        user = len(keys) == 4
        args: list[Any] = [
            SEQUENCE_LENGTH,
            self._ttl if user else 0,
            _RECORD.join(
                _FIELD.join((label, str(k), *(f"{c}{_FIELD}{t!r}" for c, t in epochs[k].items())))
                for label, epochs in ops.decay.items()
                for k in sorted(epochs)
            ),
            _RECORD.join(f"{name}{_FIELD}{delta!r}" for name, delta in ops.incr.items()),
            _RECORD.join(f"{name}{_FIELD}{value!r}" for name, value in ops.maxima.items()),
            _RECORD.join(f"{name}{_FIELD}{value!r}" for name, value in ops.sessions.items()) if user else "",
            SESSIONS_KEPT,
            _RECORD.join(
                _FIELD.join((label, str(w), *(f"{c or _EMPTY}{_FIELD}{mask}" for c, mask in words[w].items())))
                for label, words in ops.marks.items()
                for w in sorted(words)
            ),
        ]
        if user:
            args.extend(_encode(item) for item in ops.push)
        # EVAL as a command: a cluster pipeline's eval() is not the script call (nor is EVALSHA allowed there)
        # (the script bumps a user's feature version itself: one atomic step per user, see the docstring)
        pipe.execute_command("EVAL", _APPLY_OPS, len(keys), *keys, *args)

    def observe(self, records: Sequence[EventRecord]) -> None:
        if not records:
            return
        users: dict[str, Ops] = {}
        population = Ops()
        for record in records:
            user_ops, population_ops = event_ops(record)
            batch = users.get(record.user_id)
            if batch is None:
                users[record.user_id] = user_ops
            else:
                batch.merge(user_ops)
            if population_ops:
                population.merge(population_ops)
        try:
            with self._writer.pipeline(transaction=not self._cluster) as pipe:
                for user_id, ops in users.items():
                    self._queue(pipe, user_keys(user_id, self._prefix), ops)
                if population:
                    shard = zlib.crc32(next(iter(users)).encode()) % len(self._population_shards)
                    self._queue(pipe, self._population_shards[shard], population)
                # on a cluster each visitor's script succeeds or fails alone: see which ones did
                replies = pipe.execute(raise_on_error=not self._cluster)
        except redis.RedisError as exc:
            raise FeatureStoreUnavailable(f"feature store write failed: {exc}") from exc
        failed = [reply for reply in replies if isinstance(reply, Exception)]
        if failed:
            applied = frozenset(
                user_id for user_id, reply in zip(users, replies, strict=False) if not isinstance(reply, Exception)
            )
            message = f"feature store write failed for {len(users) - len(applied)} of {len(users)} visitors: {failed[0]}"
            if applied:
                raise FeatureStorePartlyApplied(message, applied_users=applied)
            raise FeatureStoreUnavailable(message)

    # -- reads ---------------------------------------------------------------------------------
    def _cached_population(self, now: float) -> PopulationFeatures | None:
        cached = self._cached
        if cached is None or time.monotonic() - cached[0] >= self._population_cache_s:
            return None
        features = cached[1]
        return features if features.now == now else replace(features, now=now)

    def _remember(self, state: FeatureState, now: float) -> PopulationFeatures:
        features = population_features(state, now)
        with self._cache_lock:
            self._cached = (time.monotonic(), features)
        return features

    def _queue_user_read(self, pipe: Any, user_id: str) -> None:
        sums, maxima, seq, sessions = user_keys(user_id, self._prefix)
        pipe.hgetall(sums)
        pipe.zrange(maxima, 0, -1, withscores=True)
        pipe.lrange(seq, 0, -1)
        pipe.zrange(sessions, 0, -1, withscores=True)

    def read(self, user_id: str, *, now: float | None = None) -> StoreRead:
        now = time.time() if now is None else now
        population = self._cached_population(now)
        try:
            pipe = self._reader.pipeline(transaction=False)
            self._queue_user_read(pipe, user_id)
            if population is None:
                self._queue_population_read(pipe)
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise FeatureStoreUnavailable(f"feature store read failed: {exc}") from exc
        user = user_features(_state(*replies[:4]), now)
        if population is None:
            population = self._remember(self._population_state(replies[4:]), now)
        return StoreRead(user, population)

    def _queue_population_read(self, pipe: Any) -> None:
        for sums, maxima in self._population_shards:
            pipe.hgetall(sums)
            pipe.zrange(maxima, 0, -1, withscores=True)

    @staticmethod
    def _population_state(replies: list[Any]) -> FeatureState:
        """The shards' states as one: sums added, maxima the largest (see the module docstring)."""
        if len(replies) == 2:
            return _state(replies[0], replies[1])
        sums: dict[str, float] = {}
        maxima: dict[str, float] = {}
        for shard_sums, shard_maxima in zip(replies[::2], replies[1::2], strict=True):
            for name, value in shard_sums.items():
                sums[name] = sums.get(name, 0.0) + float(value)
            for name, value in shard_maxima:
                maxima[name] = max(maxima.get(name, value), value)
        return FeatureState(sums, maxima, [], {})

    def population(self, *, now: float | None = None) -> PopulationFeatures:
        now = time.time() if now is None else now
        population = self._cached_population(now)
        if population is not None:
            return population
        try:
            pipe = self._reader.pipeline(transaction=False)
            self._queue_population_read(pipe)
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise FeatureStoreUnavailable(f"feature store read failed: {exc}") from exc
        return self._remember(self._population_state(replies), now)

    def user_state(self, user_id: str) -> FeatureState:
        try:
            pipe = self._reader.pipeline(transaction=False)
            self._queue_user_read(pipe, user_id)
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise FeatureStoreUnavailable(f"feature store read failed: {exc}") from exc
        return _state(*replies)

    # -- stored answers (inference/serving/stored.py) ------------------------------------------
    def answer_read(self, user_id: str) -> tuple[int, str | None]:
        """(the user's feature version, their stored answer or None): one round trip."""
        sums = user_keys(user_id, self._prefix)[0]
        try:
            pipe = self._reader.pipeline(transaction=False)
            pipe.hget(sums, VERSION_FIELD)
            pipe.get(answer_keys(user_id, self._prefix)[0])
            version, payload = pipe.execute()
        except redis.RedisError as exc:
            raise FeatureStoreUnavailable(f"feature store read failed: {exc}") from exc
        return int(version or 0), payload

    def answer_write(self, user_id: str, payload: str, *, ttl_s: float) -> None:
        try:
            self._writer.set(answer_keys(user_id, self._prefix)[0], payload, px=max(1, int(ttl_s * 1000)))
        except redis.RedisError as exc:
            raise FeatureStoreUnavailable(f"feature store write failed: {exc}") from exc

    def answers_schedule(self, user_ids: Sequence[str], *, debounce_s: float) -> list[str]:
        """Flag each user's answer for a recompute; returns the users not already flagged (the caller
        enqueues one recompute for those). A flag lives ``debounce_s`` x 10 at most: a recompute that never
        ran (a lost task) delays the next one by that much, never forever."""
        if not user_ids:
            return []
        ttl_ms = max(1, int(debounce_s * 10_000))
        try:
            pipe = self._writer.pipeline(transaction=False)
            for user_id in user_ids:
                pipe.set(answer_keys(user_id, self._prefix)[1], "1", nx=True, px=ttl_ms)
            flagged = pipe.execute()
        except redis.RedisError as exc:
            raise FeatureStoreUnavailable(f"feature store write failed: {exc}") from exc
        return [user_id for user_id, new in zip(user_ids, flagged, strict=True) if new]

    def answer_claim(self, user_id: str) -> int:
        """Clear the user's recompute flag (events from now on flag it again) and return their feature
        version, read after the flag is gone: an answer computed next is at least that fresh."""
        try:
            pipe = self._writer.pipeline(transaction=True)
            pipe.delete(answer_keys(user_id, self._prefix)[1])
            pipe.hget(user_keys(user_id, self._prefix)[0], VERSION_FIELD)
            _deleted, version = pipe.execute()
        except redis.RedisError as exc:
            raise FeatureStoreUnavailable(f"feature store write failed: {exc}") from exc
        return int(version or 0)

    # -- deletion ------------------------------------------------------------------------------
    def forget(self, user_id: str) -> None:
        try:
            self._writer.delete(*user_keys(user_id, self._prefix), *answer_keys(user_id, self._prefix))
        except redis.RedisError as exc:
            raise FeatureStoreUnavailable(f"feature store delete failed: {exc}") from exc

    def clear(self) -> None:
        try:
            batch: list[str] = []
            for key in self._writer.scan_iter(match=f"{self._prefix}u:{{*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._writer.delete(*batch)
                    batch = []
            self._writer.delete(*batch, *(key for keys in self._population_shards for key in keys))
        except redis.RedisError as exc:
            raise FeatureStoreUnavailable(f"feature store clear failed: {exc}") from exc
        with self._cache_lock:
            self._cached = None

    def close(self) -> None:
        """Nothing to release: the clients are the process's (``redis_client``), shared with every other
        store of the same server, and live as long as the process."""
