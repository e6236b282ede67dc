"""``RedisLedger``: the ad ledger in Redis (services and scale-out modes), one Redis or a Redis Cluster.

The scripts' Lua source is ``redis_scripts``. Keys and invariants of ``RedisLedger`` (docs/scaling.md, "Where
each Redis key lives"); ``<p>`` is the prefix:

- ``<p>freq:{<visitor>}`` (the visitor's slot): hash of ``<campaign>:h<hour>`` / ``<campaign>:d<day>``
  impression counts, expiring two days after the last change.
- ``<p>{c<campaign>}:spend`` (the campaign's slot): hash ``t`` (total spend) and ``d:<day>``;
  ``<p>{c<campaign>}:report:<hour>``: that campaign's report counters of the hour (fields ``<metric>``).
  ``<p>report-index:<hour>``: the set of campaigns with a report that hour (written once per process and
  hour, read by ``report_read`` only: no hot key on the request path).
- ``<p>tok:{<token>}`` (the token's slot): a click token already billed. ``<p>{c<campaign>}:seen:<serve>``:
  a served impression already counted viewable.
- ``<p>{k<creative>}:stats`` (the creative's slot): hash ``imp``, ``clk``, ``exp``, ``view``: the
  statistics the click model learns from, one small hash per creative (no global hot hash); and its repeat
  statistics, ``r<bucket>e`` (expected clicks, micros) and ``r<bucket>c`` (clicks) per repeat bucket.
- ``<p>clicks:owed`` (its own slot): hash of click id -> ``"<outcome> <price micros>"``, the ``AdClick`` rows
  the ledger billed that the database did not take (``click_rows_settle`` writes them, then deletes them).

A reservation spans two slots (the visitor's caps, the campaign's budget), so it is made in steps, each
one atomic script: (1) the caps are *held* (counted) in the visitor's slot, or refused; (2) the budget is
checked and charged in the campaign's slot (only checked where the caps refused, so that a refusal names
the budget first, as one script would); (3) caps held for a reservation the budget refused are given
back, and the creative's statistics count the impression. On a Redis Cluster these are three pipelined
round trips for a whole page; on one Redis the same three scripts run, charge after charge, inside one
script call (``RESERVE``: one round trip, atomic as a whole, so nothing is ever left half done there).
Invariants:

- Spend never passes the budget by more than one price, across any number of hosts: the check and the
  charge are one script in the campaign's slot.
- A visitor never sees more impressions than a cap allows: a cap is held before any money moves, and only
  given back for an impression that will not run. Between (1) and (3) a held cap may refuse a concurrent
  request of the same visitor that would have fitted: the error is always towards fewer impressions.
- A reservation whose answer does not come back is voided. It may have run (Redis answered after the
  client gave up, or died before answering), while its decision served house ads. Each reservation has an
  id and leaves a receipt of what it held or charged (``<p>res:<id>`` on one Redis; on a Redis Cluster one
  per step and charge in the step's slot, ``<p>res:{<visitor>}:<id>:<i>`` and
  ``<p>{c<campaign>}:res:<id>:<i>``), kept ``RECEIPT_TTL_S``. The process keeps the ids it lost and, before its
  next reservation (at most every ``VOID_RETRY_S`` while Redis does not answer), gives back what their
  receipts say (caps, money, served count, statistics) and leaves the receipts void, so a reservation
  arriving after its void changes nothing. A failed second step on a cluster is voided the same way: the
  caps its first step held are given back then (until then they are held: fewer impressions, never more).
  The process also hands each lost reservation to ``on_lost`` as it is lost: the platform keeps it in the
  database, where the beat's task voids it (``reservation_void``; ``adsite.ads.services.reservations``), so
  that a process that dies first, keeps more than ``LOST_KEPT`` or does not reserve again does not leave it
  counted; a second void gives back nothing. What is left: a reservation neither voided within
  ``RECEIPT_TTL_S`` (the database away too, or no beat running, and its process gone) nor voidable because
  Redis refuses the void (an error, not an outage: logged, dropped) stays counted; the budget is then short
  by those impressions, never exceeded.
- Statistics are counted after the money, in the creative's slot: should that node be unreachable,
  a creative's statistics miss those impressions (logged), while money and caps stay exact.
- A click token is taken first in its own slot (``SET NX``): a token is billed at most once whatever
  happens after; if the billing step's answer does not come back, the token is given back. The billing
  step leaves a mark in the campaign's slot (``<p>{c<campaign>}:clk:<token>``: outcome, click id, price),
  so a retry is answered the first charge instead of charging again, and a charge whose reply was lost
  is settled from the mark (``click_charge_settle``; absent, it is voided so the lost request charges
  nothing should it still arrive).
- A reservation changes nothing once its caller has stopped waiting for it. Each script call of a
  reservation carries a deadline: this host's clock when it is sent plus the client's reply timeout, in
  microseconds. The script compares it with Redis's own clock (``TIME``) before it changes anything, and
  past it answers ``LATE_CODE`` (``LATE``) instead. The case it closes: Redis stopped (or a network path
  stalled) while a reservation waits in its socket; the client times out and the decision serves house
  ads; when Redis runs again it reads the request. Without the deadline it would then charge a CPM price,
  count the visitor's caps and a served impression for an ad that never ran. A request run just before its
  deadline whose reply is lost, or one that still runs because this host's clock is ahead of Redis's
  (``/readyz`` reports the offset), is voided as above. A caller that
  still waits and gets ``LATE`` (this host's clock behind Redis's, or a pipeline's replies slow) treats
  the ledger as unavailable.
- Sequentially (one call after another) the steps give exactly the outcomes of ``MemoryLedger``;
  ``tests/ads/test_ledger_parity.py`` runs both over random sequences.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

from adsite.ads.accounting.contract import (
    BILLED,
    CAPPED_DAY,
    CAPPED_HOUR,
    DAILY_BUDGET,
    FREE,
    FREQ_TTL_S,
    LATE,
    NO_REPEAT,
    OK,
    OUT_OF_BUDGET,
    REPEAT_BUCKETS,
    REPLAYED,
    Charge,
    ClickChargeUnknown,
    ClickRowOwed,
    CreativeStats,
    LedgerUnavailable,
    ReservationLost,
    Snapshot,
    day_key,
    hour_key,
    report_ttl_s,
)
from adsite.ads.accounting.redis_scripts import (
    BUDGET_STEP,
    CAPS_RELEASE,
    CAPS_STEP,
    CLICK,
    CLICK_SETTLE,
    LATE_CODE,
    RECEIPT_TTL_S,
    RESERVE,
    SNAPSHOT,
    STATS_FIELDS,
    VIEW,
    VOID,
    VOID_BUDGET,
    VOID_CAPS,
)

logger = logging.getLogger(__name__)

# reservations whose answer was lost, kept by a process until voided (the oldest dropped past this)
LOST_KEPT = 10_000
# how often a process tries again to void reservations whose answers were lost, while Redis does not answer
VOID_RETRY_S = 1.0

# a creative's statistics as a snapshot reads them: ``STATS_FIELDS``' values
_Stats = tuple[int, ...]


def _repeat_args(charge: Charge) -> tuple[str, int]:
    """(the stats field that counts this impression's expected clicks, or "" for none, the micros to add)."""
    if charge.repeat == NO_REPEAT or not charge.expected_micros:
        return "", 0
    return f"r{charge.repeat}e", charge.expected_micros


_CAPS_OUTCOMES = {0: OK, 3: CAPPED_HOUR, 4: CAPPED_DAY, LATE_CODE: LATE}
_BUDGET_OUTCOMES = {0: OK, 1: OUT_OF_BUDGET, 2: DAILY_BUDGET, LATE_CODE: LATE}


def _outcome(caps: int, budget: int) -> str:
    """A reservation's outcome from its two steps' replies: a refusal names the budget first, as
    ``MemoryLedger`` does."""
    refused = _BUDGET_OUTCOMES[budget]
    return refused if refused != OK else _CAPS_OUTCOMES[caps]


def _late_logged(outcomes: list[str]) -> list[str]:
    """``outcomes``, with a warning when Redis ran any past its deadline while this client still waited."""
    if LATE in outcomes:
        logger.warning(
            "ads.reservation_late %d of %d reservations reached Redis past their deadline and changed nothing "
            "(this host's clock behind Redis's? see /readyz)", outcomes.count(LATE), len(outcomes),
        )
    return outcomes


_CLICK_OUTCOMES = {0: BILLED, 1: FREE}


def _click_mark_read(reply: Any) -> tuple[str, int, int]:
    """A click charge mark ``"<code> <click id> <price>"``: (outcome, the click it belongs to, price charged)."""
    code, owner, price = (reply.decode() if isinstance(reply, bytes) else str(reply)).split()
    return _CLICK_OUTCOMES[int(code)], int(owner), int(price)


class _Deadline:
    """Stands in a script call's ARGV for its deadline, computed when the call is sent (``RedisLedger._run``)."""

    def __repr__(self) -> str:
        return "DEADLINE"


DEADLINE = _Deadline()


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
    """The same counters in Redis (one server or a Redis Cluster), changed only by Lua scripts, each on
    the keys of one hash slot (atomic across processes and hosts); see the module docstring."""

    def __init__(
        self, url: str, *, prefix: str = "ads:", client: Any = None, shared_max_age_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
        on_lost: Callable[[ReservationLost], None] | None = None,
    ) -> None:
        """``clock``: how old a shared counter is; ``wall_clock``: this host's time for a reservation's
        deadline, compared with Redis's clock (see the module docstring), not the decision's ``now``.
        ``on_lost``: handed each reservation whose answer was lost, as it is lost (the platform keeps them in
        the database, so that a process that dies before voiding them does not leave them counted)."""
        from inference.api import redis_client, reply_timeout_s

        # on the request path, guarded: a Redis that hangs costs one timeout per process per cooldown,
        # then house ads at once (``client``: another Redis-compatible client, e.g. the parity tests')
        self._redis = client if client is not None else redis_client(url, timeout="request")
        self._prefix = prefix
        self._wall_clock = wall_clock
        self._reply_timeout_s = reply_timeout_s(self._redis)  # None: the client waits for ever, no deadline
        self._scripts = {
            name: self._redis.register_script(source)
            for name, source in (
                ("caps", CAPS_STEP), ("release", CAPS_RELEASE), ("budget", BUDGET_STEP), ("click", CLICK),
                ("view", VIEW), ("click_settle", CLICK_SETTLE), ("snapshot", SNAPSHOT), ("reserve", RESERVE),
                ("void", VOID), ("void_caps", VOID_CAPS), ("void_budget", VOID_BUDGET),
            )
        }
        # reservations whose answers were lost, voided by a later reservation of this process (``_voids_send``)
        self._lost: collections.deque[ReservationLost] = collections.deque(maxlen=LOST_KEPT)
        self._voids_next_try = 0.0
        self._on_lost = on_lost
        self._indexed: set[tuple[str, int]] = set()  # (hour, campaign) this process put in the report index
        from redis.cluster import RedisCluster

        self._cluster = isinstance(self._redis, RedisCluster)
        # the snapshot's campaign and creative counters, shared by this process's decisions for up to
        # ``shared_max_age_s`` (0: every snapshot reads them); see ``snapshot``
        self._shared_max_age_s = shared_max_age_s
        self._clock = clock
        self._shared_spend: dict[int, tuple[float, str, int, int]] = {}  # campaign: (read at, day, total, today)
        self._shared_stats: dict[int, tuple[float, _Stats]] = {}  # creative: (read at, its statistics)
        self._stats_generation = 0  # bumped whenever a shared statistic is read again (Snapshot.stats_generation)
        # ((campaign ids, creative ids, day), oldest read among them, their counters): the latest snapshot's
        # shared part, handed to the next decisions that plan from the same campaigns while it is fresh
        self._shared_view: tuple[tuple[Any, ...], float, Snapshot] | None = None  # no visitor's caps in it

    # -- keys: one slot per visitor ({<user>}), per campaign ({c<id>}), per creative ({k<id>}) --------
    def _freq(self, user_id: str) -> str:
        return f"{self._prefix}freq:{{{user_id}}}"

    def _spend(self, campaign_id: int) -> str:
        return f"{self._prefix}{{c{campaign_id}}}:spend"

    def _report(self, campaign_id: int, hour: str) -> str:
        return f"{self._prefix}{{c{campaign_id}}}:report:{hour}"

    def _receipt(self, rid: str) -> str:
        """A reservation's receipt on one Redis (``RESERVE``)."""
        return f"{self._prefix}res:{rid}"

    def _receipt_caps(self, user_id: str, rid: str, i: int) -> str:
        """The receipt of charge ``i``'s caps step on a Redis Cluster (the visitor's slot)."""
        return f"{self._prefix}res:{{{user_id}}}:{rid}:{i}"

    def _receipt_budget(self, campaign_id: int, rid: str, i: int) -> str:
        """The receipt of charge ``i``'s budget step on a Redis Cluster (the campaign's slot)."""
        return f"{self._prefix}{{c{campaign_id}}}:res:{rid}:{i}"

    def _report_index(self, hour: str) -> str:
        return f"{self._prefix}report-index:{hour}"

    def _click_mark(self, campaign_id: int, token_id: str) -> str:
        return f"{self._prefix}{{c{campaign_id}}}:clk:{token_id}"

    def _stats(self, creative_id: int) -> str:
        return f"{self._prefix}{{k{creative_id}}}:stats"

    def _index(self, campaign_ids: Iterable[int], now: float) -> None:
        """Name the campaigns in the hour's report index, before their counters move (once per process and
        hour: the index is read by ``report_read`` only, and ``SADD`` is idempotent)."""
        hour = hour_key(now)
        new = sorted({c for c in campaign_ids if (hour, c) not in self._indexed})
        if not new:
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(self._report_index(hour), *new)
        pipe.expire(self._report_index(hour), report_ttl_s())
        pipe.execute()
        self._indexed.update((hour, c) for c in new)

    def _deadline_us(self) -> int:
        """A reservation's deadline if sent now: once the client has stopped waiting (0: none)."""
        if not self._reply_timeout_s:
            return 0
        return int((self._wall_clock() + self._reply_timeout_s) * 1_000_000)

    def _queue(self, pipe: Any, name: str, keys: list[str], args: list[Any], deadline_us: int = 0) -> None:
        script = self._scripts[name]
        args = [deadline_us if a is DEADLINE else a for a in args]
        if self._cluster:
            # redis-py's cluster pipeline refuses EVALSHA (and its eval() is something else): EVAL sent as
            # a command, routed by its keys; the scripts are a few hundred bytes
            pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
        else:
            pipe.evalsha(script.sha, len(keys), *keys, *args)

    def _run(self, calls: list[tuple[str, list[str], list[Any]]]) -> list[Any]:
        """Run script calls in one pipeline (one round trip per node), each atomic on its own, in order;
        replies in order. A node that lost its scripts (restarted, failed over, flushed) answers NOSCRIPT
        and ran nothing: the scripts are loaded again and only those calls run again. ``DEADLINE`` in a
        call's arguments is replaced by the deadline of the round trip that sends it."""
        from redis.exceptions import NoScriptError, RedisError

        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            deadline_us = self._deadline_us()
            for i in todo:
                name, keys, args = calls[i]
                self._queue(pipe, name, keys, args, deadline_us)
            answers = pipe.execute(raise_on_error=False)
            missing = []
            for i, answer in zip(todo, answers, strict=True):
                if isinstance(answer, NoScriptError) and attempt == 1:
                    missing.append(i)
                elif isinstance(answer, RedisError):
                    raise answer
                else:
                    replies[i] = answer
            if not missing:
                return replies
            for name in sorted({calls[i][0] for i in missing}):
                self._redis.script_load(self._scripts[name].script)
            todo = missing
        raise AssertionError("unreachable")

    @_unavailable_on_redis_error
    def snapshot(
        self, *, campaign_ids: Sequence[int], creative_ids: Sequence[int], user_id: str, now: float
    ) -> Snapshot:
        """The counters a decision plans from. The visitor's caps are read every time; the campaigns' spend
        and the creatives' statistics, which every decision of every visitor reads (~120 hashes for the
        demo's 41 campaigns), are read at most every ``shared_max_age_s`` by this process and shared by its
        decisions meanwhile. The snapshot is a hint (``contract.Snapshot``): a campaign whose budget ran
        out since is refused by the reservation's atomic check and the next candidate is tried, and pacing
        lags by at most that age."""
        day, hour = day_key(now), hour_key(now)
        read_at = self._clock()
        oldest = read_at - self._shared_max_age_s
        key = (tuple(campaign_ids), tuple(creative_ids), day)
        view = self._shared_view
        if view is not None and view[0] == key and view[1] > oldest:  # the same shared counters, all fresh
            shared = view[2]
            freq = self._counters_read([], [], user_id, day)[2] if user_id else {}
        else:
            spend_ids = [c for c in campaign_ids if not self._fresh_spend(c, day, oldest)]
            stats_ids = [c for c in creative_ids if not self._fresh_stats(c, oldest)]
            spend, stats, freq = self._counters_read(spend_ids, stats_ids, user_id, day)
            if self._shared_max_age_s > 0:
                self._shared_spend.update((c, (read_at, day, *v)) for c, v in zip(spend_ids, spend, strict=True))
                self._shared_stats.update((c, (read_at, v)) for c, v in zip(stats_ids, stats, strict=True))
                self._stats_generation += bool(stats_ids)
                spend_of = {c: self._shared_spend[c][2:] for c in campaign_ids}
                stats_of = {c: self._shared_stats[c][1] for c in creative_ids}
            else:
                spend_of = dict(zip(spend_ids, spend, strict=True))
                stats_of = dict(zip(stats_ids, stats, strict=True))
            shared = Snapshot(
                spend_total={c: spend_of[c][0] for c in campaign_ids},
                spend_today={c: spend_of[c][1] for c in campaign_ids},
                user_hour={},
                user_day={},
                impressions={c: stats_of[c][0] for c in creative_ids},
                clicks={c: stats_of[c][1] for c in creative_ids},
                extra_exposure={c: stats_of[c][2] for c in creative_ids},
                repeat_expected={b: sum(stats_of[c][3 + b] for c in creative_ids) for b in range(REPEAT_BUCKETS)},
                repeat_clicks={
                    b: sum(stats_of[c][3 + REPEAT_BUCKETS + b] for c in creative_ids) for b in range(REPEAT_BUCKETS)
                },
            )
            if self._shared_max_age_s > 0:  # valid while its oldest counter is
                read = [self._shared_spend[c][0] for c in campaign_ids] + [self._shared_stats[c][0] for c in creative_ids]
                self._shared_view = (key, min(read, default=read_at), shared)
        user_hour: dict[int, int] = dict.fromkeys(campaign_ids, 0) if user_id else {}
        user_day: dict[int, int] = dict.fromkeys(campaign_ids, 0) if user_id else {}
        hour_tag, day_tag = f"h{hour}", f"d{day}"
        for field_name, count in freq.items():  # "<campaign>:h<hour>" and "<campaign>:d<day>"
            campaign, _, tag = field_name.partition(":")
            counts = user_hour if tag == hour_tag else user_day if tag == day_tag else None
            if counts is not None and campaign.isdigit() and int(campaign) in counts:
                counts[int(campaign)] = count
        # the shared dicts are read, never written, by the decisions that get them
        return dataclasses.replace(
            shared, user_hour=user_hour, user_day=user_day,
            stats_generation=self._stats_generation if self._shared_max_age_s > 0 else None,
        )

    def _fresh_spend(self, campaign_id: int, day: str, oldest: float) -> bool:
        entry = self._shared_spend.get(campaign_id)
        return entry is not None and entry[0] > oldest and entry[1] == day

    def _fresh_stats(self, creative_id: int, oldest: float) -> bool:
        entry = self._shared_stats.get(creative_id)
        return entry is not None and entry[0] > oldest

    def _counters_read(
        self, campaign_ids: Sequence[int], creative_ids: Sequence[int], user_id: str, day: str
    ) -> tuple[list[tuple[int, int]], list[_Stats], dict[str, int]]:
        """(total and today's spend per campaign, ``STATS_FIELDS`` per creative, the visitor's freq hash)."""
        n, m = len(campaign_ids), len(creative_ids)
        if not (campaign_ids or creative_ids or user_id):
            return [], [], {}
        if not self._cluster:
            # one script call: ~120 replies parsed as one (a pipeline of HMGETs cost ~4 ms of Python per decision)
            keys = [self._spend(c) for c in campaign_ids] + [self._stats(c) for c in creative_ids]
            if user_id:
                keys.append(self._freq(user_id))
            flat, pairs = self._run([("snapshot", keys, [n, f"d:{day}", "1" if user_id else "0"])])[0]
            values = [int(v or 0) for v in flat]
            spend = [(values[2 * i], values[2 * i + 1]) for i in range(n)]
            width = len(STATS_FIELDS)
            stats = [tuple(values[2 * n + width * i : 2 * n + width * (i + 1)]) for i in range(m)]
            freq = {pairs[i].decode(): int(pairs[i + 1]) for i in range(0, len(pairs), 2)}
            return spend, stats, freq
        pipe = self._redis.pipeline(transaction=False)
        for c in campaign_ids:
            pipe.hmget(self._spend(c), ["t", f"d:{day}"])
        for c in creative_ids:
            pipe.hmget(self._stats(c), list(STATS_FIELDS))
        if user_id:
            pipe.hgetall(self._freq(user_id))
        replies = pipe.execute()
        spend = [(int(total or 0), int(today or 0)) for total, today in replies[:n]]
        stats = [tuple(int(v or 0) for v in reply) for reply in replies[n : n + m]]
        freq = {k.decode(): int(v) for k, v in replies[n + m].items()} if user_id else {}
        return spend, stats, freq

    @_unavailable_on_redis_error
    def impression_reserve(self, *, charge: Charge, user_id: str, now: float) -> str:
        return self._reserve([charge], user_id, now)[0]

    @_unavailable_on_redis_error
    def impressions_reserve(self, *, charges: Sequence[Charge], user_id: str, now: float) -> list[str]:
        """A page's placements in one round trip on one Redis, three on a Redis Cluster, whatever their
        number (see the module docstring): each reservation exactly as if made alone, one after another."""
        return self._reserve(list(charges), user_id, now) if charges else []

    def _reserve(self, charges: list[Charge], user_id: str, now: float) -> list[str]:
        from redis.exceptions import RedisError

        if self._lost:
            self._voids_send()
        rid = uuid.uuid4().hex
        try:
            if not self._cluster:
                return self._reserve_at_once(charges, user_id, now, rid)
            return self._reserve_in_steps(charges, user_id, now, rid)
        except RedisError:
            # the answer did not come back: the reservation may have run (Redis answered after the client
            # gave up, or died before answering); the decision serves house ads, so it is voided later
            lost = ReservationLost(rid, tuple(charges), user_id, now, self._wall_clock())
            self._lost.append(lost)
            if self._on_lost is not None:
                try:
                    self._on_lost(lost)
                except Exception:  # the decision goes on with house ads whatever the keeper does
                    logger.exception("ads.reservation_lost_unkept %s", rid)
            raise

    def _reserve_call(
        self, charges: list[Charge], user_id: str, now: float, rid: str, deadline: Any = DEADLINE
    ) -> tuple[list[str], list[Any]]:
        """``RESERVE``'s keys and arguments (``VOID``'s too)."""
        day, hour = day_key(now), hour_key(now)
        keys = [self._freq(user_id or ""), self._receipt(rid)]
        args: list[Any] = [
            "1" if user_id else "0", FREQ_TTL_S, report_ttl_s(), "t", f"d:{day}", deadline, RECEIPT_TTL_S,
        ]
        for c in charges:
            keys += [self._spend(c.campaign_id), self._report(c.campaign_id, hour), self._stats(c.creative_id)]
            args += [f"{c.campaign_id}:h{hour}", f"{c.campaign_id}:d{day}", c.cap_per_hour, c.cap_per_day,
                     c.total_budget_micros, c.daily_budget_micros, c.impression_price_micros, c.extra_exposure_micros,
                     *_repeat_args(c)]
        return keys, args

    def _reserve_at_once(self, charges: list[Charge], user_id: str, now: float, rid: str) -> list[str]:
        """One Redis: the three steps of every charge in one script call (``RESERVE``), atomic as a whole."""
        keys, args = self._reserve_call(charges, user_id, now, rid)
        self._index([c.campaign_id for c in charges], now)
        replies = self._run([("reserve", keys, args)])[0]
        return _late_logged([_outcome(int(caps), int(budget)) for caps, budget in replies])

    def _void(self, lost: ReservationLost) -> int:
        """Give back what a reservation whose answer was lost did, by its receipts, and leave them void so that
        the reservation, should it arrive later, changes nothing; the impressions given back."""
        charges = list(lost.charges)
        if not self._cluster:
            keys, args = self._reserve_call(charges, lost.user_id, lost.now, lost.rid, deadline=0)
            return int(self._run([("void", keys, args)])[0])
        day, hour = day_key(lost.now), hour_key(lost.now)
        calls: list[tuple[str, list[str], list[Any]]] = []
        for i, c in enumerate(charges):
            if lost.user_id:
                calls.append((
                    "void_caps", [self._freq(lost.user_id), self._receipt_caps(lost.user_id, lost.rid, i)],
                    [f"{c.campaign_id}:h{hour}", f"{c.campaign_id}:d{day}", RECEIPT_TTL_S],
                ))
            calls.append((
                "void_budget",
                [self._spend(c.campaign_id), self._report(c.campaign_id, hour),
                 self._receipt_budget(c.campaign_id, lost.rid, i)],
                ["t", f"d:{day}", c.impression_price_micros, RECEIPT_TTL_S],
            ))
        replies = self._run(calls)
        return sum(int(reply) for (name, _, _), reply in zip(calls, replies, strict=True) if name == "void_budget")

    @_unavailable_on_redis_error
    def reservation_void(self, *, lost: ReservationLost) -> int:
        """Void one lost reservation now, whichever process lost it (``contract.Ledger``; the platform's
        settling task, for the reservations a process kept in the database and did not void itself). A
        second void of the same reservation finds its receipt void and gives back nothing."""
        return self._void_now(lost)

    def _void_now(self, lost: ReservationLost) -> int:
        """``_void`` with its outcome logged; 0 for a reservation too old to void or whose void Redis refuses
        (an error such as a wrong key type, not an outage: trying again would not help). Raises the
        ``RedisError`` of an outage (``READONLY`` included)."""
        from redis.exceptions import ReadOnlyError, ResponseError

        age = self._wall_clock() - lost.lost_at
        if age > RECEIPT_TTL_S:
            logger.warning(
                "ads.reservation_void_expired a reservation of %d impressions whose answer was lost %.0f s ago "
                "stays counted (its receipt has expired)", len(lost.charges), age,
            )
            return 0
        try:
            given = self._void(lost)
        except ResponseError as exc:
            if isinstance(exc, ReadOnlyError):
                raise
            logger.error("ads.reservation_void_refused %s: a lost reservation stays counted", exc)
            return 0
        if given:
            logger.warning(
                "ads.reservation_voided %d of %d impressions of a reservation whose answer was lost "
                "(given back: money, caps, served count and statistics)", given, len(lost.charges),
            )
        return given

    def _voids_send(self) -> None:
        """Void the reservations whose answers were lost, oldest first (at most every ``VOID_RETRY_S`` while
        Redis does not answer; one that cannot be voided now waits for a later reservation). A receipt
        expires after ``RECEIPT_TTL_S``: a reservation lost longer ago stays counted (logged)."""
        from redis.exceptions import RedisError

        if self._clock() < self._voids_next_try:
            return
        while self._lost:
            try:
                lost = self._lost.popleft()
            except IndexError:  # another thread took the last one
                return
            try:
                self._void_now(lost)
            except RedisError as exc:
                self._lost.appendleft(lost)
                self._voids_next_try = self._clock() + VOID_RETRY_S
                logger.info("ads.reservation_void_deferred %d waiting: %s", len(self._lost), exc)
                return

    def _reserve_in_steps(self, charges: list[Charge], user_id: str, now: float, rid: str) -> list[str]:
        """Step 1, the visitor's slot: hold the caps. Step 2, each campaign's slot: charge the budget
        (only check it where the caps refused, so that a refusal names the budget first, as one script
        would). Step 3: give back the caps of reservations the budget refused, and count the creatives'
        statistics of those that hold. Steps 1 and 2 leave receipts (``CAPS_STEP``, ``BUDGET_STEP``): should
        either's answer be lost, ``_void`` gives back what they did."""
        from redis.exceptions import RedisError

        day, hour = day_key(now), hour_key(now)
        fields = [(f"{c.campaign_id}:h{hour}", f"{c.campaign_id}:d{day}") for c in charges]
        freq = self._freq(user_id)
        caps = (
            self._run([
                (
                    "caps", [freq, self._receipt_caps(user_id, rid, i)],
                    [h, d, c.cap_per_hour, c.cap_per_day, FREQ_TTL_S, DEADLINE, RECEIPT_TTL_S],
                )
                for i, (c, (h, d)) in enumerate(zip(charges, fields, strict=True))
            ])
            if user_id
            else [0] * len(charges)
        )
        held = [int(reply) == 0 for reply in caps]
        # should this step fail (a campaign's node unreachable, or its answer lost), no impression of this page
        # runs: ``_reserve`` keeps the reservation to be voided, which gives back the caps held above too
        budget_calls = [
            (
                "budget",
                [self._spend(c.campaign_id), self._report(c.campaign_id, hour), self._receipt_budget(c.campaign_id, rid, i)],
                [
                    "t", f"d:{day}", c.total_budget_micros, c.daily_budget_micros, c.impression_price_micros,
                    report_ttl_s(), "0" if ok else "1", DEADLINE, RECEIPT_TTL_S,
                ],
            )
            for i, (c, ok) in enumerate(zip(charges, held, strict=True))
        ]
        self._index([c.campaign_id for c in charges], now)
        budgets = self._run(budget_calls)
        outcomes = []
        after = self._redis.pipeline(transaction=False)
        for c, (h, d), ok, cap, budget in zip(charges, fields, held, caps, budgets, strict=True):
            outcome = _outcome(int(cap), int(budget))
            outcomes.append(outcome)
            if int(budget) != 0:
                if ok and user_id:
                    self._queue(after, "release", [freq], [h, d])
            elif ok:
                after.hincrby(self._stats(c.creative_id), "imp", 1)
                if c.extra_exposure_micros:
                    after.hincrby(self._stats(c.creative_id), "exp", c.extra_exposure_micros)
                field_name, expected = _repeat_args(c)
                if field_name:
                    after.hincrby(self._stats(c.creative_id), field_name, expected)
        if len(after):
            try:
                answers = after.execute(raise_on_error=False)
            except RedisError as exc:
                answers = [exc]
            failed = [a for a in answers if isinstance(a, Exception)]
            if any(type(a).__name__ == "NoScriptError" for a in failed):
                # the visitor's node lost its scripts since step 1 (a failover): release through the Script
                for (h, d), ok, budget in zip(fields, held, budgets, strict=True):
                    if ok and int(budget) != 0:
                        self._scripts["release"](keys=[freq], args=[h, d])
            elif failed:
                # the money and the caps are right; a creative's statistics miss these impressions
                logger.warning("ads.ledger_statistics_lost %s", failed[0])
        return _late_logged(outcomes)

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
        click_id: int = 0,
        repeat: int = NO_REPEAT,
    ) -> str:
        from redis.exceptions import RedisError

        # step 1, the token's own slot: a token is billed at most once, whatever campaign it names
        token = f"{self._prefix}tok:{{{token_id}}}"
        if not self._redis.set(token, "1", nx=True, ex=max(1, token_ttl_s)):
            return REPLAYED
        try:
            self._index([campaign_id], now)
            (reply,) = self._run([(
                "click",
                [self._spend(campaign_id), self._report(campaign_id, hour_key(now)), self._click_mark(campaign_id, token_id)],
                [
                    "t", f"d:{day_key(now)}", price_micros, total_budget_micros, daily_budget_micros,
                    report_ttl_s(), click_id, max(1, token_ttl_s),
                ],
            )])
        except RedisError as exc:
            # step 2's answer did not come: it may have run (the reply was lost) or not. The token is given
            # back so that a retry may bill it; the mark makes that retry answer the first charge, never
            # charge twice; ``click_charge_settle`` says later what this click's charge did.
            try:
                self._redis.delete(token)
            except RedisError:
                pass
            raise ClickChargeUnknown(f"ads ledger: a click charge's answer was lost: {exc}") from exc
        outcome, owner, _ = _click_mark_read(reply)
        if owner != click_id:
            return REPLAYED  # the token's charge belongs to an earlier request of it (a retry after a lost reply)
        try:  # every click not replayed counts, and under its repeat bucket when the token carried one
            if 0 <= repeat < REPEAT_BUCKETS:
                pipe = self._redis.pipeline(transaction=False)
                pipe.hincrby(self._stats(creative_id), "clk", 1)
                pipe.hincrby(self._stats(creative_id), f"r{repeat}c", 1)
                pipe.execute()
            else:
                self._redis.hincrby(self._stats(creative_id), "clk", 1)
        except RedisError as exc:
            logger.warning("ads.ledger_statistics_lost %s", exc)
        return outcome

    @_unavailable_on_redis_error
    def click_charge_settle(self, *, token_id: str, campaign_id: int, click_id: int, token_ttl_s: int) -> tuple[str, int]:
        (reply,) = self._run([("click_settle", [self._click_mark(campaign_id, token_id)], [click_id, max(1, token_ttl_s)])])
        outcome, owner, price = _click_mark_read(reply)
        if owner != click_id:
            return REPLAYED, 0
        return outcome, price

    @_unavailable_on_redis_error
    def viewable_add(self, *, creative_ids: Iterable[int]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for creative_id in creative_ids:
            pipe.hincrby(self._stats(creative_id), "view", 1)
        pipe.execute()

    @_unavailable_on_redis_error
    def viewable_count(self, *, serve_id: str, creative_id: int, campaign_id: int, ttl_s: int, now: float) -> bool:
        self._index([campaign_id], now)
        (reply,) = self._run([(
            "view",
            [f"{self._prefix}{{c{campaign_id}}}:seen:{serve_id}", self._report(campaign_id, hour_key(now))],
            [max(1, ttl_s), report_ttl_s()],
        )])
        if int(reply) != 1:
            return False
        self._redis.hincrby(self._stats(creative_id), "view", 1)
        return True

    @_unavailable_on_redis_error
    def report_add(self, *, counts: dict[str, int], now: float) -> None:
        if not counts:
            return
        hour = hour_key(now)
        parsed = [(int(name.partition(":")[0]), name.partition(":")[2], n) for name, n in counts.items()]
        self._index([campaign for campaign, _, _ in parsed], now)
        pipe = self._redis.pipeline(transaction=False)
        for campaign, metric, n in parsed:
            pipe.hincrby(self._report(campaign, hour), metric, n)
            pipe.expire(self._report(campaign, hour), report_ttl_s())
        pipe.execute()

    @_unavailable_on_redis_error
    def report_read(self, *, since: float | None, now: float) -> dict[str, int]:
        if since is None:
            prefix = self._report_index("")
            hours = sorted(
                (key.decode() if isinstance(key, bytes) else str(key))[len(prefix) :]
                for key in self._redis.scan_iter(match=f"{prefix}*", count=1000)
            )
        else:
            hours = [str(h) for h in range(int(since // 3600), int(now // 3600) + 1)]
        pipe = self._redis.pipeline(transaction=False)
        for hour in hours:
            pipe.smembers(self._report_index(hour))
        keys = [
            (int(campaign), self._report(int(campaign), hour))
            for hour, members in zip(hours, pipe.execute() if hours else [], strict=True)
            for campaign in members
        ]
        out: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            pipe = self._redis.pipeline(transaction=False)
            for _, key in keys[start : start + 500]:
                pipe.hgetall(key)
            for (campaign, _), reply in zip(keys[start : start + 500], pipe.execute(), strict=True):
                for name, value in reply.items():
                    field_name = f"{campaign}:{name.decode()}"
                    out[field_name] = out.get(field_name, 0) + int(value)
        return out

    @_unavailable_on_redis_error
    def creative_stats(self, *, creative_id: int) -> CreativeStats:
        values = self._redis.hmget(self._stats(creative_id), ["imp", "clk", "view"])
        imp, clk, view = (int(v or 0) for v in values)
        return CreativeStats(imp, clk, view)

    @_unavailable_on_redis_error
    def visitor_forget(self, *, user_id: str) -> None:
        self._redis.delete(self._freq(user_id))

    @_unavailable_on_redis_error
    def spend(self, *, campaign_id: int, now: float) -> tuple[int, int]:
        total, today = self._redis.hmget(self._spend(campaign_id), ["t", f"d:{day_key(now)}"])
        return int(total or 0), int(today or 0)

    def _owed_key(self) -> str:
        return f"{self._prefix}clicks:owed"  # one hash: field click id, value "<outcome> <price micros>"

    @_unavailable_on_redis_error
    def click_row_owe(self, *, owed: ClickRowOwed) -> None:
        self._redis.hset(self._owed_key(), str(owed.click_id), f"{owed.outcome} {owed.price_micros}")

    @_unavailable_on_redis_error
    def click_rows_owed(self, *, limit: int) -> list[ClickRowOwed]:
        out: list[ClickRowOwed] = []
        for field_name, value in self._redis.hscan_iter(self._owed_key(), count=max(10, limit)):
            outcome, _, price = value.decode().partition(" ")
            out.append(ClickRowOwed(int(field_name), outcome, int(price)))
            if len(out) >= limit:
                break
        return out

    @_unavailable_on_redis_error
    def click_rows_settled(self, *, click_ids: Sequence[int]) -> None:
        if click_ids:
            self._redis.hdel(self._owed_key(), *[str(c) for c in click_ids])

    @_unavailable_on_redis_error
    def clear(self) -> None:
        keys = list(self._redis.scan_iter(match=f"{self._prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            self._redis.delete(*keys[start : start + 1000])
        self._indexed.clear()
        self._shared_spend.clear()
        self._shared_stats.clear()
        self._shared_view = None
