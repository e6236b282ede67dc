"""Every Redis key and script of the site on a real Redis Cluster: the layout before this change is
refused by the cluster (a script's keys in several slots), the one now in place is not; the ad budget and
caps stay exact under concurrent reservations from many clients; a slot moved to another master, or a
master killed and replaced by its replica, never reaches a caller as anything but the error it degrades on,
and the callers recover by themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from adsite.ads.accounting import (
    BILLED,
    FREE,
    LATE,
    OK,
    OUT_OF_BUDGET,
    REPLAYED,
    Charge,
    LedgerUnavailable,
    RedisLedger,
    day_key,
)
from adsite.ads.accounting.redis_scripts import BUDGET
from inference.redis_clients import guard_reset, redis_client
from tests.scaleout.conftest import RedisClusterNodes, cluster_started
from tracking.buffer import APPEND_SCRIPT, shard_of, shards, stream_append

pytestmark = pytest.mark.scaleout


@pytest.fixture
def scale_out(redis_cluster: RedisClusterNodes) -> Iterator[RedisClusterNodes]:
    guard_reset()
    # what the settings give with REDIS_CLUSTER=1 (TRACKING_STREAM_SHARDS defaults to 8 there)
    tracking = {**settings.TRACKING, "STREAM_SHARDS": 8, "BUFFER": "redis"}
    with override_settings(REDIS_URL=redis_cluster.url, REDIS_CLUSTER=True, TRACKING=tracking):
        yield redis_cluster
    guard_reset()


def _cluster(nodes: RedisClusterNodes) -> RedisCluster:
    return RedisCluster.from_url(nodes.url, socket_timeout=1)


def test_the_former_key_layout_is_refused_by_the_cluster_and_the_new_one_is_not(scale_out: RedisClusterNodes) -> None:
    client = _cluster(scale_out)
    # the event buffer's script with the unsharded names: stream and ledger in two slots (refused by the
    # client before sending: not even a redis.RedisError, which the collect path would have let through)...
    with pytest.raises(RedisClusterException, match="same key slot"):
        client.eval(APPEND_SCRIPT, 2, "adsite:events", "adsite:ledger", 60, "adsite:dedupe:", "e1", "{}")
    # ... and with both in one slot, the dedupe keys the script makes are elsewhere: the server refuses
    shard = shards()[0]
    with pytest.raises(redis.ResponseError, match="(?i)non local key|cross"):
        client.eval(APPEND_SCRIPT, 2, shard.stream, shard.ledger, 60, "adsite:dedupe:", "e1", "{}")
    # the same script on one shard's keys, all in the shard's slot
    new = client.eval(APPEND_SCRIPT, 2, shard.stream, shard.ledger, 60, shard.dedupe_prefix, "e1", "{}")
    assert new == [b"e1"]
    # the money script on the former shared keys (one spend hash and one report hash for every campaign)
    with pytest.raises(RedisClusterException, match="same key slot"):
        client.eval(BUDGET, 2, "ads:spend", "ads:report:1", "t:1", "d:1", 10, 10, 1, 60, "0")
    assert client.eval(BUDGET, 2, "ads:{c1}:spend", "ads:{c1}:report:1", "t", "d", 10, 10, 1, 60, "0") == 0


def test_buffer_shards_spread_over_every_master_and_dedupe_per_event(scale_out: RedisClusterNodes) -> None:
    client = _cluster(scale_out)
    owners = {client.get_node_from_key(shard.stream).port for shard in shards()}
    assert len(shards()) == 8 and len(owners) == 3
    row = ("ev-1", "page_view", "u", "s", 0, 0, "", "", "", "[]", "{}", "", "web", "", "", False)
    first = stream_append([row])
    again = stream_append([row])  # the same event again: the same shard, the same dedupe key
    assert first == {"ev-1"} and again == set()
    assert shard_of("ev-1", 8) == shard_of("ev-1", 8)


PRICE = 5_000
K = 40


def _reserver(url: str, prefix: str, n: int, visitors: int, rounds: int, outcomes: list[tuple[str, str]]) -> None:
    # a client of its own per thread: its own connections to every master, as another host would have
    ledger = RedisLedger(url, prefix=prefix, client=RedisCluster.from_url(url, socket_timeout=2))
    charge = Charge(7, 70, PRICE, K * PRICE, K * PRICE, cap_per_hour=0, cap_per_day=3)
    for i in range(rounds):
        visitor = f"v{(n * 7 + i) % visitors}"
        outcome = ledger.impressions_reserve(charges=[charge], user_id=visitor, now=time.time())[0]
        outcomes.append((visitor, outcome))


def test_budget_and_caps_stay_exact_under_concurrent_reservations(scale_out: RedisClusterNodes) -> None:
    prefix = f"exact-{uuid.uuid4().hex[:8]}:"
    outcomes: list[tuple[str, str]] = []
    threads = [
        threading.Thread(target=_reserver, args=(scale_out.url, prefix, n, 30, 20, outcomes)) for n in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcomes) == 16 * 20
    served = Counter(visitor for visitor, outcome in outcomes if outcome == OK)
    ledger = RedisLedger(scale_out.url, prefix=prefix, client=_cluster(scale_out))
    now = time.time()
    assert sum(served.values()) == K  # the budget bought exactly K impressions, with demand to spare
    assert ledger.spend(campaign_id=7, now=now) == (K * PRICE, K * PRICE)
    assert max(served.values()) <= 3
    assert Counter(outcome for _, outcome in outcomes)[OUT_OF_BUDGET] > 0
    # no cap is left held by a reservation the budget refused: each visitor's count is what they saw
    for visitor in {v for v, _ in outcomes}:
        snap = ledger.snapshot(campaign_ids=[7], creative_ids=[70], user_id=visitor, now=now)
        assert snap.user_day.get(7, 0) == served[visitor]
    assert ledger.creative_stats(creative_id=70).impressions == K
    assert day_key(now)


def test_a_click_is_charged_once_and_settled_from_its_mark_on_the_cluster(scale_out: RedisClusterNodes) -> None:
    """The click's charge and its mark share the campaign's slot: one script on the cluster, retried
    without a second charge, and settled for the click it belongs to."""
    ledger = RedisLedger(scale_out.url, prefix=f"clicks-{uuid.uuid4().hex[:8]}:", client=_cluster(scale_out))
    args = {"campaign_id": 8, "creative_id": 80, "price_micros": PRICE, "daily_budget_micros": 10 * PRICE,
            "total_budget_micros": 10 * PRICE, "now": time.time(), "token_ttl_s": 60}
    assert [ledger.click_charge(token_id=f"t{i}", click_id=i, **args) for i in (1, 2)] == [BILLED, BILLED]
    settle = {"campaign_id": 8, "token_ttl_s": 60}
    assert ledger.click_charge_settle(token_id="t1", click_id=1, **settle) == (BILLED, PRICE)
    assert ledger.click_charge_settle(token_id="t2", click_id=9, **settle) == (REPLAYED, 0)
    assert ledger.click_charge_settle(token_id="t3", click_id=3, **settle) == (FREE, 0)  # voided
    assert ledger.click_charge(token_id="t3", click_id=4, **args) == REPLAYED
    assert ledger.spend(campaign_id=8, now=time.time()) == (2 * PRICE, 2 * PRICE)


def _clock_behind_after(calls: int) -> Callable[[], float]:
    """A clock right for its first ``calls`` readings, then 5 s behind (a deadline already passed)."""
    read = [0]

    def clock() -> float:
        read[0] += 1
        return time.time() - (5 if read[0] > calls else 0)

    return clock


def test_reservations_past_their_deadline_change_nothing_on_the_cluster(scale_out: RedisClusterNodes) -> None:
    """The reservation's steps on the cluster each carry a deadline (see ``RedisLedger``). Past it at the
    visitor's step, nothing is held; past it only at the campaigns' step (the clock jumps between the two
    round trips), nothing is charged and the caps held in the first step are given back."""
    charges = [Charge(campaign_id=c, creative_id=10 * c, impression_price_micros=PRICE, daily_budget_micros=10**9,
                      total_budget_micros=10**9, cap_per_hour=5, cap_per_day=5) for c in (11, 12)]
    now = time.time()
    for late_from in (0, 1):  # the first round trip late (the caps), or only the second (the budgets)
        prefix = f"late-{uuid.uuid4().hex[:8]}:"
        ledger = RedisLedger(
            scale_out.url, prefix=prefix, client=_cluster(scale_out), wall_clock=_clock_behind_after(late_from)
        )
        assert ledger.impressions_reserve(charges=charges, user_id="visitor", now=now) == [LATE, LATE]
        snap = ledger.snapshot(campaign_ids=[11, 12], creative_ids=[110, 120], user_id="visitor", now=now)
        assert (snap.user_hour, snap.user_day) == ({11: 0, 12: 0}, {11: 0, 12: 0}), late_from
        assert snap.spend_total == {11: 0, 12: 0} and snap.impressions == {110: 0, 120: 0}, late_from
        # on time, the same reservations are made
        on_time = RedisLedger(scale_out.url, prefix=prefix, client=_cluster(scale_out))
        assert on_time.impressions_reserve(charges=charges, user_id="visitor", now=now) == [OK, OK]
        assert on_time.spend(campaign_id=11, now=now) == (PRICE, PRICE)


def test_a_reservation_whose_answer_was_lost_on_the_cluster_is_given_back_by_the_next_one(
    scale_out: RedisClusterNodes,
) -> None:
    """On the cluster a page's reservation is two round trips, each leaving receipts in its own slots. The
    answer of either lost after the cluster ran it (the client raises a timeout once the round trip is done,
    as when the reply is lost on its way back): the decision serves house ads, and the process's next
    reservation gives back what the lost one did, caps and money, before making its own."""
    charges = [Charge(campaign_id=c, creative_id=10 * c, impression_price_micros=PRICE, daily_budget_micros=10**9,
                      total_budget_micros=10**9, cap_per_hour=5, cap_per_day=5) for c in (21, 22)]
    now = time.time()
    for lost_after in (1, 2):  # the caps' round trip, or the budgets'
        ledger = RedisLedger(scale_out.url, prefix=f"lost-{uuid.uuid4().hex[:8]}:", client=_cluster(scale_out))
        run = ledger._run
        trips = [0]

        def answer_lost(calls: list[Any], run: Any = run, trips: list[int] = trips, lost_after: int = lost_after) -> Any:
            replies = run(calls)
            trips[0] += 1
            if trips[0] == lost_after:
                raise redis.TimeoutError("Timeout reading from socket")
            return replies

        ledger._run = answer_lost  # type: ignore[method-assign]
        with pytest.raises(LedgerUnavailable):
            ledger.impressions_reserve(charges=charges, user_id="visitor", now=now)
        ledger._run = run  # type: ignore[method-assign]
        snap = ledger.snapshot(campaign_ids=[21, 22], creative_ids=[210, 220], user_id="visitor", now=now)
        assert snap.user_hour == {21: 1, 22: 1}, lost_after  # it ran
        charged = PRICE if lost_after == 2 else 0
        assert snap.spend_total == {21: charged, 22: charged}, lost_after
        assert ledger.impressions_reserve(charges=charges[:1], user_id="visitor", now=now) == [OK]
        snap = ledger.snapshot(campaign_ids=[21, 22], creative_ids=[210, 220], user_id="visitor", now=now)
        assert (snap.user_hour, snap.user_day) == ({21: 1, 22: 0}, {21: 1, 22: 0}), lost_after
        assert snap.spend_total == {21: PRICE, 22: 0} and snap.impressions == {210: 1, 220: 0}, lost_after
        report = ledger.report_read(since=now, now=now)
        assert (report.get("21:served", 0), report.get("22:served", 0)) == (1, 0), lost_after


def _node_id(port: int) -> str:
    return str(redis.Redis(port=port).execute_command("CLUSTER MYID").decode())


def test_a_slot_moved_to_another_master_is_followed_not_raised(scale_out: RedisClusterNodes) -> None:
    prefix = f"moved-{uuid.uuid4().hex[:8]}:"
    ledger = RedisLedger(scale_out.url, prefix=prefix, client=redis_client(scale_out.url))
    charge = Charge(9, 90, PRICE, 100 * PRICE, 100 * PRICE)
    assert ledger.impression_reserve(charge=charge, user_id="", now=time.time()) == OK
    # move the campaign's slot to another master behind the client's back (its slot map is now stale)
    probe = _cluster(scale_out)
    key = f"{prefix}{{c9}}:spend"
    slot = probe.keyslot(key)
    source = probe.get_node_from_key(key).port
    target = next(n.port for n in probe.get_primaries() if n.port != source)
    source_id, target_id = _node_id(source), _node_id(target)
    target_client, source_client = redis.Redis(port=target), redis.Redis(port=source)
    target_client.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
    source_client.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
    for moving in source_client.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
        source_client.execute_command("MIGRATE", "127.0.0.1", target, moving, 0, 5000)
    for node in probe.get_primaries():
        redis.Redis(port=node.port).execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
    # the next calls meet MOVED from the old owner: followed inside the client, never raised
    for _ in range(3):
        assert ledger.impression_reserve(charge=charge, user_id="", now=time.time()) == OK
    assert ledger.spend(campaign_id=9, now=time.time())[0] == 4 * PRICE
    assert redis_client(scale_out.url).get_node_from_key(key).port == target


def test_a_killed_master_degrades_callers_then_they_recover_by_themselves() -> None:
    with cluster_started(replicas=1) as nodes, override_settings(REDIS_URL=nodes.url, REDIS_CLUSTER=True):
        guard_reset()
        prefix = f"failover-{uuid.uuid4().hex[:8]}:"
        client = redis_client(nodes.url)
        ledger = RedisLedger(nodes.url, prefix=prefix, client=client)
        charge = Charge(3, 30, PRICE, 10_000 * PRICE, 10_000 * PRICE)
        assert ledger.impression_reserve(charge=charge, user_id="", now=time.time()) == OK
        victim = client.get_node_from_key(f"{prefix}{{c3}}:spend").port
        pid = int((nodes.directory / str(victim) / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        served, refused, other = 0, 0, []
        recovered_at = None
        started = time.monotonic()
        while time.monotonic() - started < 30:
            try:
                outcome = ledger.impression_reserve(charge=charge, user_id="", now=time.time())
            except LedgerUnavailable:
                refused += 1  # what the decisions catch: house ads for that request
            except Exception as exc:  # anything else would reach a visitor as a 5xx
                other.append(repr(exc))
            else:
                assert outcome == OK
                served += 1
                if refused and recovered_at is None:
                    recovered_at = time.monotonic() - started
                if recovered_at is not None and served > 20:
                    break
            time.sleep(0.05)
        assert other == []
        assert refused > 0 and recovered_at is not None, (served, refused)
        # the replica took the slots over; the money counted before and after the failover is all there
        assert client.get_node_from_key(f"{prefix}{{c3}}:spend").port != victim
        assert ledger.spend(campaign_id=3, now=time.time())[0] == served * PRICE + PRICE
        status = subprocess.run(
            ["redis-cli", "-p", str(next(p for p in nodes.ports if p != victim)), "cluster", "info"],
            capture_output=True, text=True, timeout=10,
        )
        assert "cluster_state:ok" in status.stdout
        guard_reset()
