"""Money and frequency counters, exact under concurrency: one interface, two backends.

Promises:
- ``impression_reserve`` is one atomic check-and-count: the campaign's total and daily spend are
  below budget, the visitor is under both frequency caps, then (CPM) the price is spent, the
  visitor's counters and the creative's served impressions go up. Because the check is "spent so far
  < budget" and the charge follows atomically, a campaign overspends by at most one price.
- ``click_charge`` is one atomic step too: a token id is billed at most once (a replay is refused),
  and a CPC click is billed only while the budget lasts; every non-replayed click counts for the
  creative's statistics.
- ``RedisLedger`` (services mode): Lua scripts, so any number of processes share exact counters.
  The keys are ``<prefix>spend`` / ``<prefix>stats`` (hashes) and one ``<prefix>freq:{user}`` hash per
  visitor (expiring after two days). A script touches the shared hashes and one visitor's hash: on
  Redis Cluster that needs the shared hashes and the visitor hashes in one slot (a ``{ads}`` tag),
  i.e. the ads counters stay on one shard.
- Report counters (what ``ads_report`` invoices from): per UTC hour and campaign, impressions served,
  viewable and billed, clicks billed, spend, and invalid impressions and clicks by reason, as fields
  ``<campaign>:<metric>`` of one ``<prefix>report:<hour>`` hash per hour (campaign 0: invalid traffic
  that names no campaign), kept ``REPORT_RETENTION_DAYS``. Served, billed and spend move in the same
  atomic step as the money; the field set is bounded by campaigns x metrics per hour.
- When Redis cannot be reached, every ``RedisLedger`` call raises ``LedgerUnavailable`` (never a
  redis-py error): callers degrade (house ads, clicks redirected but not billed), never crash.
- ``MemoryLedger`` (embedded mode): dicts under one lock, every change written through to a small
  SQLite file in the same critical section, so spend, caps and statistics survive a restart.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from adsite.ads.conf import ads_setting

FREQ_TTL_S = 2 * 86400

OK = "ok"
OUT_OF_BUDGET = "out_of_budget"
DAILY_BUDGET = "daily_budget"
CAPPED_HOUR = "capped_hour"
CAPPED_DAY = "capped_day"
BILLED = "billed"
FREE = "free"
REPLAYED = "replayed"


def day_key(now: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


def hour_key(now: float) -> str:
    return str(int(now // 3600))


# report metrics (``<campaign>:<metric>`` fields); invalid ones are ``ivi.<reason>`` / ``ivc.<reason>``
SERVED = "served"
VIEWABLE = "viewable"
IMPRESSIONS_BILLED = "imp_billed"
CLICKS_BILLED = "clk_billed"
SPEND = "spend"


def report_ttl_s() -> int:
    return int(float(ads_setting("REPORT_RETENTION_DAYS")) * 86400)


@dataclass(frozen=True, slots=True)
class Charge:
    """What an impression of one campaign's creative may cost and which limits it must respect."""

    campaign_id: int
    creative_id: int
    impression_price_micros: int  # CPM: bid/1000; CPC: 0 (paid on click)
    daily_budget_micros: int
    total_budget_micros: int
    cap_per_hour: int = 0
    cap_per_day: int = 0
    # the click model's weight of this impression (the visitor's interest lift) minus 1, in millionths:
    # a creative's exposure = impressions + the summed extra; its quality is learned as clicks /
    # exposure (``scoring.quality_posteriors``). Counted with the impression, no money involved
    extra_exposure_micros: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Counters read in one go for one decision (a hint: the reservation re-checks atomically)."""

    spend_total: dict[int, int]
    spend_today: dict[int, int]
    user_hour: dict[int, int]
    user_day: dict[int, int]
    impressions: dict[int, int]
    clicks: dict[int, int]
    extra_exposure: dict[int, int] = field(default_factory=dict)  # creative -> summed extra_exposure_micros

    @classmethod
    def empty(cls) -> Snapshot:
        """No counters known (the ledger unreachable)."""
        return cls({}, {}, {}, {}, {}, {})


@dataclass(frozen=True, slots=True)
class CreativeStats:
    impressions: int
    clicks: int
    viewable: int


class Ledger(Protocol):
    def snapshot(
        self, *, campaign_ids: Sequence[int], creative_ids: Sequence[int], user_id: str, now: float
    ) -> Snapshot: ...

    def impression_reserve(self, *, charge: Charge, user_id: str, now: float) -> str: ...

    def impressions_reserve(self, *, charges: Sequence[Charge], user_id: str, now: float) -> list[str]:
        """``impression_reserve`` for each charge in order (each one atomic, as if called one by one)."""
        ...

    def click_charge(
        self,
        *,
        token_id: str,
        campaign_id: int,
        creative_id: int,
        price_micros: int,
        daily_budget_micros: int,
        total_budget_micros: int,
        now: float,
        token_ttl_s: int,
    ) -> str: ...

    def viewable_add(self, *, creative_ids: Iterable[int]) -> None:
        """Add viewable impressions to creatives' statistics (no check: tests and history only)."""
        ...

    def viewable_count(self, *, serve_id: str, creative_id: int, campaign_id: int, ttl_s: int, now: float) -> bool:
        """Count one served impression as viewable, once: False (nothing counted) when ``serve_id`` was
        counted before. One atomic step: the creative's statistics and the campaign's report."""
        ...

    def report_add(self, *, counts: dict[str, int], now: float) -> None:
        """Add ``{"<campaign>:<metric>": n}`` to the hour of ``now`` (invalid traffic, viewable)."""
        ...

    def report_read(self, *, since: float | None, now: float) -> dict[str, int]:
        """The report counters summed over the hours from ``since``'s (all kept hours when None) to now."""
        ...

    def creative_stats(self, *, creative_id: int) -> CreativeStats: ...

    def visitor_forget(self, *, user_id: str) -> None:
        """Delete one visitor's frequency counters (the privacy operation)."""
        ...

    def spend(self, *, campaign_id: int, now: float) -> tuple[int, int]: ...

    def clear(self) -> None: ...


# ---- in-process ----------------------------------------------------------------------------------


class MemoryLedger:
    """Counters in a dict under one lock, written through to SQLite (``path``; ``None``: memory only)."""

    def __init__(self, path: str | Path | None) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}
        self._expiry: dict[str, float] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL)"
            )
            now = time.time()
            self._db.execute("DELETE FROM counters WHERE expires_at IS NOT NULL AND expires_at < ?", (now,))
            for key, value, expires_at in self._db.execute("SELECT key, value, expires_at FROM counters"):
                self._values[key] = int(value)
                if expires_at is not None:
                    self._expiry[key] = float(expires_at)

    def _get(self, key: str, now: float) -> int:
        expires = self._expiry.get(key)
        if expires is not None and expires < now:
            self._values.pop(key, None)
            self._expiry.pop(key, None)
        return self._values.get(key, 0)

    def _add(self, changes: list[tuple[str, int, float | None]], now: float) -> None:
        """Apply and persist ``(key, delta, expires_at)`` changes; the caller holds the lock."""
        for key, delta, expires in changes:
            self._values[key] = self._get(key, now) + delta
            if expires is not None:
                self._expiry[key] = expires
        if self._db is not None:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO counters (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                [(key, self._values[key], self._expiry.get(key)) for key, _, _ in changes],
            )
            self._db.execute("COMMIT")

    def snapshot(
        self, *, campaign_ids: Sequence[int], creative_ids: Sequence[int], user_id: str, now: float
    ) -> Snapshot:
        day, hour = day_key(now), hour_key(now)
        with self._lock:
            return Snapshot(
                spend_total={c: self._get(f"spend:{c}", now) for c in campaign_ids},
                spend_today={c: self._get(f"spend:{c}:{day}", now) for c in campaign_ids},
                user_hour={c: self._get(f"freq:{user_id}:{c}:h{hour}", now) for c in campaign_ids}
                if user_id
                else {},
                user_day={c: self._get(f"freq:{user_id}:{c}:d{day}", now) for c in campaign_ids} if user_id else {},
                impressions={c: self._get(f"imp:{c}", now) for c in creative_ids},
                clicks={c: self._get(f"clk:{c}", now) for c in creative_ids},
                extra_exposure={c: self._get(f"exp:{c}", now) for c in creative_ids},
            )

    def impression_reserve(self, *, charge: Charge, user_id: str, now: float) -> str:
        day, hour = day_key(now), hour_key(now)
        c = charge.campaign_id
        with self._lock:
            if self._get(f"spend:{c}", now) >= charge.total_budget_micros:
                return OUT_OF_BUDGET
            if self._get(f"spend:{c}:{day}", now) >= charge.daily_budget_micros:
                return DAILY_BUDGET
            hour_field, day_field = f"freq:{user_id}:{c}:h{hour}", f"freq:{user_id}:{c}:d{day}"
            if user_id and charge.cap_per_hour and self._get(hour_field, now) >= charge.cap_per_hour:
                return CAPPED_HOUR
            if user_id and charge.cap_per_day and self._get(day_field, now) >= charge.cap_per_day:
                return CAPPED_DAY
            changes: list[tuple[str, int, float | None]] = [(f"imp:{charge.creative_id}", 1, None)]
            if charge.extra_exposure_micros:
                changes.append((f"exp:{charge.creative_id}", charge.extra_exposure_micros, None))
            report, report_expiry = f"rep:{hour}:{c}:", now + report_ttl_s()
            changes.append((report + SERVED, 1, report_expiry))
            if charge.impression_price_micros:
                changes += [
                    (f"spend:{c}", charge.impression_price_micros, None),
                    (f"spend:{c}:{day}", charge.impression_price_micros, now + FREQ_TTL_S),
                    (report + IMPRESSIONS_BILLED, 1, report_expiry),
                    (report + SPEND, charge.impression_price_micros, report_expiry),
                ]
            if user_id:
                changes += [(hour_field, 1, now + FREQ_TTL_S), (day_field, 1, now + FREQ_TTL_S)]
            self._add(changes, now)
            return OK

    def impressions_reserve(self, *, charges: Sequence[Charge], user_id: str, now: float) -> list[str]:
        return [self.impression_reserve(charge=charge, user_id=user_id, now=now) for charge in charges]

    def click_charge(
        self,
        *,
        token_id: str,
        campaign_id: int,
        creative_id: int,
        price_micros: int,
        daily_budget_micros: int,
        total_budget_micros: int,
        now: float,
        token_ttl_s: int,
    ) -> str:
        day = day_key(now)
        with self._lock:
            token_key = f"tok:{token_id}"
            if self._get(token_key, now):
                return REPLAYED
            changes: list[tuple[str, int, float | None]] = [
                (token_key, 1, now + token_ttl_s),
                (f"clk:{creative_id}", 1, None),
            ]
            outcome = FREE
            if (
                price_micros
                and self._get(f"spend:{campaign_id}", now) < total_budget_micros
                and self._get(f"spend:{campaign_id}:{day}", now) < daily_budget_micros
            ):
                report, report_expiry = f"rep:{hour_key(now)}:{campaign_id}:", now + report_ttl_s()
                changes += [
                    (f"spend:{campaign_id}", price_micros, None),
                    (f"spend:{campaign_id}:{day}", price_micros, now + FREQ_TTL_S),
                    (report + CLICKS_BILLED, 1, report_expiry),
                    (report + SPEND, price_micros, report_expiry),
                ]
                outcome = BILLED
            self._add(changes, now)
            return outcome

    def viewable_add(self, *, creative_ids: Iterable[int]) -> None:
        now = time.time()
        with self._lock:
            self._add([(f"view:{c}", 1, None) for c in creative_ids], now)

    def viewable_count(self, *, serve_id: str, creative_id: int, campaign_id: int, ttl_s: int, now: float) -> bool:
        with self._lock:
            seen = f"seen:{serve_id}"
            if self._get(seen, now):
                return False
            self._add(
                [
                    (seen, 1, now + ttl_s),
                    (f"view:{creative_id}", 1, None),
                    (f"rep:{hour_key(now)}:{campaign_id}:{VIEWABLE}", 1, now + report_ttl_s()),
                ],
                now,
            )
            return True

    def report_add(self, *, counts: dict[str, int], now: float) -> None:
        if not counts:
            return
        expiry = now + report_ttl_s()
        hour = hour_key(now)
        with self._lock:
            self._add([(f"rep:{hour}:{name}", n, expiry) for name, n in counts.items()], now)

    def report_read(self, *, since: float | None, now: float) -> dict[str, int]:
        first = int(since // 3600) if since is not None else None
        out: dict[str, int] = {}
        with self._lock:
            for key in list(self._values):
                if not key.startswith("rep:"):
                    continue
                _, hour, name = key.split(":", 2)
                if first is not None and int(hour) < first:
                    continue
                value = self._get(key, now)
                if value:
                    out[name] = out.get(name, 0) + value
        return out

    def creative_stats(self, *, creative_id: int) -> CreativeStats:
        now = time.time()
        with self._lock:
            return CreativeStats(
                self._get(f"imp:{creative_id}", now), self._get(f"clk:{creative_id}", now),
                self._get(f"view:{creative_id}", now),
            )

    def spend(self, *, campaign_id: int, now: float) -> tuple[int, int]:
        with self._lock:
            return self._get(f"spend:{campaign_id}", now), self._get(f"spend:{campaign_id}:{day_key(now)}", now)

    def creatives_counted(self) -> set[int]:
        """The creatives this process holds statistics for (impressions, clicks or viewable
        impressions): what decisions read per creative, so what forged input must not grow."""
        with self._lock:
            return {
                int(key.split(":", 1)[1])
                for key in self._values
                if key.startswith(("imp:", "clk:", "view:")) and key.split(":", 1)[1].isdigit()
            }

    def visitor_forget(self, *, user_id: str) -> None:
        prefix = f"freq:{user_id}:"
        with self._lock:
            keys = [key for key in self._values if key.startswith(prefix)]
            for key in keys:
                self._values.pop(key, None)
                self._expiry.pop(key, None)
            if self._db is not None and keys:
                self._db.executemany("DELETE FROM counters WHERE key = ?", [(key,) for key in keys])

    def statistics_add(self, *, creative_id: int, impressions: int, clicks: int, extra_exposure_micros: int) -> None:
        """Add earlier traffic's statistics for one creative (the simulation's history); no money moves."""
        now = time.time()
        with self._lock:
            self._add([(f"imp:{creative_id}", impressions, None), (f"clk:{creative_id}", clicks, None),
                       (f"exp:{creative_id}", extra_exposure_micros, None)], now)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._expiry.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM counters")


# ---- Redis -----------------------------------------------------------------------------------------

_RESERVE = """
local total = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if total >= tonumber(ARGV[3]) then return 1 end
local today = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
if today >= tonumber(ARGV[4]) then return 2 end
local caph = tonumber(ARGV[7])
local capd = tonumber(ARGV[8])
if ARGV[5] ~= '' then
  if caph > 0 and tonumber(redis.call('HGET', KEYS[2], ARGV[5]) or '0') >= caph then return 3 end
  if capd > 0 and tonumber(redis.call('HGET', KEYS[2], ARGV[6]) or '0') >= capd then return 4 end
  redis.call('HINCRBY', KEYS[2], ARGV[5], 1)
  redis.call('HINCRBY', KEYS[2], ARGV[6], 1)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[10]))
end
local price = tonumber(ARGV[9])
if price > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], price)
  redis.call('HINCRBY', KEYS[1], ARGV[2], price)
end
redis.call('HINCRBY', KEYS[3], ARGV[11], 1)
local exposure = tonumber(ARGV[13])
if exposure ~= 0 then redis.call('HINCRBY', KEYS[3], ARGV[12], exposure) end
redis.call('HINCRBY', KEYS[4], ARGV[14] .. 'served', 1)
if price > 0 then
  redis.call('HINCRBY', KEYS[4], ARGV[14] .. 'imp_billed', 1)
  redis.call('HINCRBY', KEYS[4], ARGV[14] .. 'spend', price)
end
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[15]))
return 0
"""

_CLICK = """
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', tonumber(ARGV[6])) == false then return 2 end
redis.call('HINCRBY', KEYS[2], ARGV[5], 1)
local price = tonumber(ARGV[3])
if price <= 0 then return 1 end
local total = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local today = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
if total >= tonumber(ARGV[4]) or today >= tonumber(ARGV[7]) then return 1 end
redis.call('HINCRBY', KEYS[1], ARGV[1], price)
redis.call('HINCRBY', KEYS[1], ARGV[2], price)
redis.call('HINCRBY', KEYS[4], ARGV[8] .. 'clk_billed', 1)
redis.call('HINCRBY', KEYS[4], ARGV[8] .. 'spend', price)
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[9]))
return 0
"""

_VIEW = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) == false then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
return 1
"""

_RESERVE_OUTCOMES = {0: OK, 1: OUT_OF_BUDGET, 2: DAILY_BUDGET, 3: CAPPED_HOUR, 4: CAPPED_DAY}
_CLICK_OUTCOMES = {0: BILLED, 1: FREE, 2: REPLAYED}


class LedgerUnavailable(Exception):
    """The ledger's store could not be reached; the failed call may not have counted anything."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _unavailable_on_redis_error(method: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        from redis.exceptions import RedisError

        try:
            return method(*args, **kwargs)
        except RedisError as exc:
            raise LedgerUnavailable(f"ads ledger unavailable: {exc}") from exc

    return wrapper


class RedisLedger:
    """The same counters in Redis, changed only by Lua scripts (atomic across processes)."""

    def __init__(self, url: str, *, prefix: str = "ads:", client: Any = None) -> None:
        from inference.api import redis_client

        # on the request path, guarded: a Redis that hangs costs one timeout per process per cooldown,
        # then house ads at once (``client``: another Redis-compatible client, e.g. the parity tests')
        self._redis = client if client is not None else redis_client(url, timeout="request")
        self._prefix = prefix
        self._spend = f"{prefix}spend"
        self._stats = f"{prefix}stats"
        self._reserve = self._redis.register_script(_RESERVE)
        self._click = self._redis.register_script(_CLICK)
        self._view = self._redis.register_script(_VIEW)

    def _freq(self, user_id: str) -> str:
        return f"{self._prefix}freq:{{{user_id}}}"

    def _report(self, now: float) -> str:
        return f"{self._prefix}report:{hour_key(now)}"

    @_unavailable_on_redis_error
    def snapshot(
        self, *, campaign_ids: Sequence[int], creative_ids: Sequence[int], user_id: str, now: float
    ) -> Snapshot:
        day, hour = day_key(now), hour_key(now)
        pipe = self._redis.pipeline(transaction=False)
        # "_" keeps HMGET valid when a list is empty
        pipe.hmget(self._spend, ["_"] + [f"t:{c}" for c in campaign_ids] + [f"d:{c}:{day}" for c in campaign_ids])
        # the whole statistics hash (a few fields per creative, bounded by the catalog) rather than
        # HMGET of 3 x creatives field names: packing hundreds of arguments in Python cost more than
        # the reply, which hiredis parses in C
        pipe.hgetall(self._stats)
        if user_id:
            pipe.hgetall(self._freq(user_id))
        replies = pipe.execute()
        n = len(campaign_ids)
        spend = [int(v or 0) for v in replies[0][1:]]
        stats: dict[bytes, bytes] = replies[1]
        freq = {k.decode(): int(v) for k, v in replies[2].items()} if user_id else {}
        return Snapshot(
            spend_total=dict(zip(campaign_ids, spend[:n], strict=True)),
            spend_today=dict(zip(campaign_ids, spend[n:], strict=True)),
            user_hour={c: freq.get(f"{c}:h{hour}", 0) for c in campaign_ids} if freq else {},
            user_day={c: freq.get(f"{c}:d{day}", 0) for c in campaign_ids} if freq else {},
            impressions={c: int(stats.get(b"imp:%d" % c, 0)) for c in creative_ids},
            clicks={c: int(stats.get(b"clk:%d" % c, 0)) for c in creative_ids},
            extra_exposure={c: int(stats.get(b"exp:%d" % c, 0)) for c in creative_ids},
        )

    def _reserve_arguments(self, charge: Charge, user_id: str, now: float) -> tuple[list[str], list[Any]]:
        day, hour = day_key(now), hour_key(now)
        c = charge.campaign_id
        return (
            [self._spend, self._freq(user_id or "-"), self._stats, self._report(now)],
            [
                f"t:{c}", f"d:{c}:{day}", charge.total_budget_micros, charge.daily_budget_micros,
                f"{c}:h{hour}" if user_id else "", f"{c}:d{day}", charge.cap_per_hour, charge.cap_per_day,
                charge.impression_price_micros, FREQ_TTL_S, f"imp:{charge.creative_id}",
                f"exp:{charge.creative_id}", charge.extra_exposure_micros, f"{c}:", report_ttl_s(),
            ],
        )

    def _reserve_call(self, charge: Charge, user_id: str, now: float) -> Any:
        keys, args = self._reserve_arguments(charge, user_id, now)
        return self._reserve(keys=keys, args=args)

    @_unavailable_on_redis_error
    def impression_reserve(self, *, charge: Charge, user_id: str, now: float) -> str:
        return _RESERVE_OUTCOMES[int(self._reserve_call(charge, user_id, now))]

    @_unavailable_on_redis_error
    def impressions_reserve(self, *, charges: Sequence[Charge], user_id: str, now: float) -> list[str]:
        """One round trip for a page's placements: the scripts run one after another in a pipeline,
        each atomic, exactly as separate calls would (another process may run between two of them)."""
        if len(charges) <= 1:
            return [self.impression_reserve(charge=charge, user_id=user_id, now=now) for charge in charges]
        from redis.exceptions import NoScriptError

        # EVALSHA straight into the pipeline: a registered Script in a pipeline makes redis-py send
        # SCRIPT EXISTS first, a second round trip on every decision. Should Redis not know the script
        # (restarted, flushed), every EVALSHA of the batch fails with NOSCRIPT and none ran: load it, retry.
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            for charge in charges:
                keys, args = self._reserve_arguments(charge, user_id, now)
                pipe.evalsha(self._reserve.sha, len(keys), *keys, *args)
            try:
                return [_RESERVE_OUTCOMES[int(reply)] for reply in pipe.execute()]
            except NoScriptError:
                if attempt == 2:
                    raise
                self._redis.script_load(_RESERVE)
        raise AssertionError("unreachable")

    @_unavailable_on_redis_error
    def click_charge(
        self,
        *,
        token_id: str,
        campaign_id: int,
        creative_id: int,
        price_micros: int,
        daily_budget_micros: int,
        total_budget_micros: int,
        now: float,
        token_ttl_s: int,
    ) -> str:
        reply = self._click(
            keys=[self._spend, self._stats, f"{self._prefix}tok:{token_id}", self._report(now)],
            args=[
                f"t:{campaign_id}", f"d:{campaign_id}:{day_key(now)}", price_micros, total_budget_micros,
                f"clk:{creative_id}", max(1, token_ttl_s), daily_budget_micros, f"{campaign_id}:", report_ttl_s(),
            ],
        )
        return _CLICK_OUTCOMES[int(reply)]

    @_unavailable_on_redis_error
    def viewable_add(self, *, creative_ids: Iterable[int]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for creative_id in creative_ids:
            pipe.hincrby(self._stats, f"view:{creative_id}", 1)
        pipe.execute()

    @_unavailable_on_redis_error
    def viewable_count(self, *, serve_id: str, creative_id: int, campaign_id: int, ttl_s: int, now: float) -> bool:
        reply = self._view(
            keys=[f"{self._prefix}seen:{serve_id}", self._stats, self._report(now)],
            args=[max(1, ttl_s), f"view:{creative_id}", f"{campaign_id}:{VIEWABLE}", report_ttl_s()],
        )
        return int(reply) == 1

    @_unavailable_on_redis_error
    def report_add(self, *, counts: dict[str, int], now: float) -> None:
        if not counts:
            return
        report = self._report(now)
        pipe = self._redis.pipeline(transaction=False)
        for name, n in counts.items():
            pipe.hincrby(report, name, n)
        pipe.expire(report, report_ttl_s())
        pipe.execute()

    @_unavailable_on_redis_error
    def report_read(self, *, since: float | None, now: float) -> dict[str, int]:
        if since is None:
            keys = list(self._redis.scan_iter(match=f"{self._prefix}report:*", count=1000))
        else:
            keys = [f"{self._prefix}report:{h}" for h in range(int(since // 3600), int(now // 3600) + 1)]
        out: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            pipe = self._redis.pipeline(transaction=False)
            for key in keys[start : start + 500]:
                pipe.hgetall(key)
            for reply in pipe.execute():
                for name, value in reply.items():
                    field_name = name.decode()
                    out[field_name] = out.get(field_name, 0) + int(value)
        return out

    @_unavailable_on_redis_error
    def creative_stats(self, *, creative_id: int) -> CreativeStats:
        values = self._redis.hmget(self._stats, [f"imp:{creative_id}", f"clk:{creative_id}", f"view:{creative_id}"])
        imp, clk, view = (int(v or 0) for v in values)
        return CreativeStats(imp, clk, view)

    @_unavailable_on_redis_error
    def visitor_forget(self, *, user_id: str) -> None:
        self._redis.delete(self._freq(user_id))

    @_unavailable_on_redis_error
    def spend(self, *, campaign_id: int, now: float) -> tuple[int, int]:
        total, today = self._redis.hmget(self._spend, [f"t:{campaign_id}", f"d:{campaign_id}:{day_key(now)}"])
        return int(total or 0), int(today or 0)

    @_unavailable_on_redis_error
    def clear(self) -> None:
        keys = list(self._redis.scan_iter(match=f"{self._prefix}*", count=1000))
        if keys:
            self._redis.delete(*keys)


# ---- the one accessor ----------------------------------------------------------------------------

def ledger_build() -> Ledger:
    if ads_setting("LEDGER") == "redis":
        url = ads_setting("REDIS_URL")
        if not url:
            raise RuntimeError('ADS["LEDGER"] is "redis" but no REDIS_URL is configured')
        return RedisLedger(url, prefix=str(ads_setting("REDIS_PREFIX")))
    path = ads_setting("LEDGER_PATH")
    return MemoryLedger(None if path in (None, "", ":memory:") else path)


def ledger() -> Ledger:
    """This process's ledger (the platform's: built on first use from ``ADS["LEDGER"]``)."""
    from adsite.platform import platform

    return platform().ledger


def ledger_use(replacement: Ledger | None) -> Ledger | None:
    """Swap this process's ledger (tests, the simulation); returns the previous one."""
    from adsite.platform import platform

    current = platform()
    previous, current.ledger_backend = current.ledger_backend, replacement
    return previous
