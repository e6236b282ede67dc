"""Decay math and the read-out of a single user: exact halving, epoch boundaries, cold users."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.events import EventRecord
from inference.features import (
    HALF_LIVES,
    FeatureState,
    Ops,
    event_ops,
    pair_features,
    population_features,
    states_replay,
    user_features,
)
from inference.features.definitions import EPOCH_HALF_LIVES

T0 = 1_700_000_000.0


def view(ts: float, *categories: str, user: str = "u") -> EventRecord:
    return EventRecord(user_id=user, ts=ts, type="page_view", categories=categories, item_id="i")


@pytest.mark.parametrize(("index", "half_life"), list(enumerate(h for _, h in HALF_LIVES)))
def test_a_single_event_halves_after_each_half_life(index: int, half_life: float) -> None:
    users, _ = states_replay([view(T0, "sports")])
    for n in range(4):
        decayed = user_features(users["u"], T0 + n * half_life).decayed[index]["sports"]
        assert decayed == pytest.approx(0.5**n, rel=1e-12)


def test_decayed_counts_are_exact_across_epoch_boundaries() -> None:
    """Events on both sides of a 1-hour epoch boundary sum exactly as sum(2^-(t - t_i)/h)."""
    hour = 3_600.0
    boundary = (T0 // (EPOCH_HALF_LIVES * hour) + 1) * EPOCH_HALF_LIVES * hour
    times = [boundary - 7_000.0, boundary - 1.0, boundary, boundary + 5_000.0]
    users, _ = states_replay([view(t, "food") for t in times])
    now = boundary + 9_000.0
    expected = sum(2.0 ** (-(now - t) / hour) for t in times)
    assert user_features(users["u"], now).decayed[0]["food"] == pytest.approx(expected, rel=1e-12)


def test_decayed_share_stays_meaningful_for_a_long_idle_user() -> None:
    users, _ = states_replay([view(T0, "a"), view(T0 + 10, "a"), view(T0 + 20, "b")])
    features = user_features(users["u"], T0 + 400 * 86_400.0)
    assert features.decayed[0]["a"] == 0.0  # 1-hour decay has underflowed after 400 days
    assert features.decayed_share[0]["a"] == pytest.approx(2 / 3, rel=1e-3)


def test_cold_user_reads_as_empty_features() -> None:
    features = user_features(None, T0)
    assert features.is_cold and features.counts == {} and features.recent == ()
    assert user_features(FeatureState(), T0).is_cold
    rows = pair_features(features, population_features(None, T0), ["sports"])
    assert rows.shape == (1, rows.shape[1]) and float(rows[0, 0]) == 0.0


def test_pings_and_impressions_do_not_count_as_interest() -> None:
    events = [
        view(T0, "sports"),
        EventRecord("u", T0 + 1, "page_ping", ("sports",), session_id="s", engaged_ms=4_000),
        EventRecord("u", T0 + 2, "ad_impression", ("travel",), session_id="s"),
        EventRecord("u", T0 + 3, "ad_click", ("travel",), session_id="s", device="mobile"),
    ]
    users, population = states_replay(events)
    features = user_features(users["u"], T0 + 10)
    assert features.events == 2  # the view and the ad click
    assert features.counts == {"sports": 1.0, "travel": 1.0}
    assert features.ad_impressions == {"travel": 1.0} and features.ad_clicks == {"travel": 1.0}
    assert features.session_events == 3.0 and features.session_engaged_s == 4.0
    assert features.device == "mobile"
    assert population_features(population, T0 + 10).counts == {"sports": 1.0, "travel": 1.0}


def test_session_features_reset_after_the_session_goes_idle() -> None:
    events = [EventRecord("u", T0 + i, "page_view", ("a",), session_id="s1") for i in range(3)]
    users, _ = states_replay(events)
    assert user_features(users["u"], T0 + 60).session_events == 3.0
    assert user_features(users["u"], T0 + 3 * 3_600).session_events == 0.0


def test_ops_are_order_independent() -> None:
    """Applying the same events' operations in any order gives the same state (what makes Redis safe)."""
    events = [view(T0 + i * 977.0, "abcdef"[i % 6], "xyz"[i % 3]) for i in range(40)]
    forward, backward = FeatureState(), FeatureState()
    for record in events:
        forward.apply(event_ops(record)[0])
    for record in reversed(events):
        backward.apply(event_ops(record)[0])
    now = T0 + 50_000.0
    a, b = user_features(forward, now), user_features(backward, now)
    assert a.counts == b.counts and a.last_seen_ts == b.last_seen_ts and a.recent == b.recent
    for table_a, table_b in zip(a.decayed, b.decayed, strict=True):
        assert table_a == pytest.approx(table_b, rel=1e-12)


def test_a_user_state_does_not_grow_with_every_visit() -> None:
    """Sessions are pruned to the latest few: months of daily visits keep the state small."""
    events = [
        EventRecord("u", T0 + day * 86_400.0 + i, "page_view", ("a",), session_id=f"s{day}")
        for day in range(120)
        for i in range(3)
    ]
    users, _ = states_replay(events)
    state = users["u"]
    assert len(state.sessions) == 2
    assert sorted(k for k in state.sums if k.startswith(("sn:", "se:"))) == ["sn:s118", "sn:s119"]
    assert len(state.sums) < 40  # counts, events, types and the decay epochs still in use
    assert user_features(state, events[-1].ts + 1).session_events == 3.0


@settings(max_examples=40, deadline=None)
@given(
    order=st.permutations(list(range(24))),
    cuts=st.lists(st.integers(min_value=1, max_value=23), max_size=5),
)
def test_any_arrival_order_and_batching_gives_the_same_features(order: list[int], cuts: list[int]) -> None:
    """Concurrent writers deliver events in any order and any batches: the features do not change
    (the events span several 1-hour-half-life epochs, so epochs roll over in between)."""
    events = [
        EventRecord(
            "u",
            T0 + i * 40_003.0,
            ("page_view", "click", "ad_impression", "page_ping")[i % 4],
            ("abc"[i % 3], "xy"[i % 2]),
            item_id=f"i{i}",
            session_id=f"s{i // 6}",
            engaged_ms=100 * i,
        )
        for i in range(24)
    ]
    reference = FeatureState()
    for record in events:
        reference.apply(event_ops(record)[0])
    shuffled = [events[i] for i in order]
    bounds = [0, *sorted(set(cuts)), len(shuffled)]
    state = FeatureState()
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        batch = Ops()
        for record in shuffled[lo:hi]:
            batch.merge(event_ops(record)[0])
        state.apply(batch)
    now = T0 + 23 * 40_003.0 + 60.0
    a, b = user_features(reference, now), user_features(state, now)
    assert (a.counts, a.last_seen_ts, a.recent, a.type_counts, a.ad_impressions) == (
        b.counts,
        b.last_seen_ts,
        b.recent,
        b.type_counts,
        b.ad_impressions,
    )
    # the current session is never the one pruned, so its counters do not depend on the order either
    assert (a.session_events, a.session_engaged_s) == (b.session_events, b.session_engaged_s) == (6.0, 12.3)
    for table_a, table_b in zip(a.decayed, b.decayed, strict=True):
        assert table_a == pytest.approx(table_b, rel=1e-9)


def test_a_long_history_keeps_two_decay_epochs_per_half_life() -> None:
    """Three years of weekly visits: the decay fields stay at two epochs per half-life and category."""
    events = [view(T0 + week * 7 * 86_400.0 + i, "abc"[i]) for week in range(156) for i in range(3)]
    users, population = states_replay(events)
    state = users["u"]
    for label, _ in HALF_LIVES:
        epochs = {name.split(":")[2] for name in state.sums if name.startswith(f"d:{label}:")}
        assert len(epochs) <= 2
    assert len([name for name in state.sums if name.startswith("d:")]) <= 2 * 3 * len(HALF_LIVES)
    now = events[-1].ts + 3_600.0
    exact = sum(2.0 ** (-(now - e.ts) / 86_400.0) for e in events if e.categories == ("a",))
    assert user_features(state, now).decayed[1]["a"] == pytest.approx(exact, rel=1e-12)
    assert len([name for name in population.sums if name.startswith("d:")]) <= 2 * 3 * 2
