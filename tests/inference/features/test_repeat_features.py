"""Repeat-consumption and session pair features: what a shopper's favourites, carts and returns say."""

from __future__ import annotations

import numpy as np

from inference.events import EventRecord
from inference.features import (
    PAIR_FEATURE_NAMES,
    FeatureState,
    PopulationFeatures,
    candidate_categories,
    event_ops,
    pair_features,
    states_replay,
    user_features,
)
from inference.models.inputs import sequence_arrays

T0 = 1_700_000_000.0
HOUR = 3600.0


def _user(events: list[EventRecord], now: float):
    users, population = states_replay(sorted(events, key=lambda e: e.ts))
    return user_features(users["s"], now), population


def _column(rows: np.ndarray, candidates: list[str], name: str) -> dict[str, float]:
    return dict(zip(candidates, rows[:, PAIR_FEATURE_NAMES.index(name)].tolist(), strict=True))


def test_favourites_carts_and_purchases_are_counted_per_category() -> None:
    events = [
        EventRecord("s", T0, "page_view", ("shoes",), item_id="1"),
        EventRecord("s", T0 + 1, "click", ("shoes",), item_id="1"),
        EventRecord("s", T0 + 2, "conversion", ("shoes",), item_id="1"),
        EventRecord("s", T0 + 3, "conversion", ("shoes",), item_id="1"),
        EventRecord("s", T0 + 4, "page_view", ("hats",), item_id="2"),
    ]
    user, _ = _user(events, T0 + HOUR)
    assert user.behaviour == {"click": {"shoes": 1.0}, "conversion": {"shoes": 2.0}}
    rows = pair_features(user, PopulationFeatures.empty(user.now), ["shoes", "hats"])
    assert _column(rows, ["shoes", "hats"], "log_conversion_count") == {
        "shoes": np.float32(np.log1p(2.0)),
        "hats": 0.0,
    }
    assert _column(rows, ["shoes", "hats"], "log_click_count")["hats"] == 0.0


def test_a_category_that_returns_across_sessions_differs_from_one_burst() -> None:
    # "bags" in three visits a day apart, once each; "toys" ten times within one visit
    events = [EventRecord("s", T0 + day * 24 * HOUR, "page_view", ("bags",), item_id=f"b{day}") for day in range(3)]
    events += [EventRecord("s", T0 + 49 * HOUR + i * 60, "page_view", ("toys",), item_id="t") for i in range(10)]
    user, _ = _user(events, T0 + 60 * HOUR)
    candidates = ["bags", "toys"]
    rows = pair_features(user, PopulationFeatures.empty(user.now), candidates)
    sessions = _column(rows, candidates, "recent_sessions_with")
    assert sessions["bags"] > sessions["toys"]
    assert _column(rows, candidates, "recent_days_with") == {"bags": 3.0, "toys": 1.0}
    # the latest visit was all toys, one item viewed ten times
    assert _column(rows, candidates, "last_session_share") == {"bags": 0.0, "toys": 1.0}
    assert _column(rows, candidates, "log_recent_max_item_repeats")["toys"] == np.float32(np.log1p(10))
    # the idle time is measured from the last event, the same for every candidate
    idle = _column(rows, candidates, "log_idle_s")
    assert idle["bags"] == idle["toys"] == np.float32(np.log1p(60 * HOUR - (49 * HOUR + 540)))


def test_candidates_keep_the_recent_categories_of_a_shopper_with_a_long_past() -> None:
    # 120 old categories seen 3 times each, then two new ones seen once: the new ones are candidates
    events = [
        EventRecord("s", T0 + i * 10 + j, "page_view", (f"old{i}",)) for i in range(120) for j in range(3)
    ]
    events += [EventRecord("s", T0 + 10 * HOUR + i, "page_view", (f"new{i}",)) for i in range(2)]
    user, population = _user(events, T0 + 11 * HOUR)
    candidates = candidate_categories(user, ["popular"], limit=100)
    assert candidates[:2] == ["new1", "new0"]
    assert len(candidates) == 100 and candidates[-1] == "popular"


def test_the_sequence_says_which_kind_of_event_and_where_visits_start() -> None:
    events = [
        EventRecord("s", T0, "page_view", ("a",), item_id="1"),
        EventRecord("s", T0 + 60, "conversion", ("a",), item_id="1"),
        EventRecord("s", T0 + 5 * HOUR, "click", ("b",), item_id="2"),
    ]
    user, _ = _user(events, T0 + 6 * HOUR)
    _items, _cats, _ages, kinds = sequence_arrays(user, {"a": 0, "b": 1}, 64)
    # 1 + 2 * type index + (opens a session): view opening, purchase within, favourite opening
    assert kinds[-3:].tolist() == [2, 7, 4]
    assert not kinds[:-3].any()


def test_returns_count_the_hours_and_days_of_a_category_over_the_whole_history() -> None:
    # "bags" once a day for 40 days (past two 30-day masks: the oldest are folded into counts), then 60
    # views of "toys" within one hour push every "bags" event out of the recent sequence
    events = [EventRecord("s", T0 + day * 24 * HOUR, "page_view", ("bags",), item_id=f"b{day}") for day in range(40)]
    events += [EventRecord("s", T0 + 40 * 24 * HOUR + i * 30, "page_view", ("toys",), item_id="t") for i in range(60)]
    user, _ = _user(events, T0 + 41 * 24 * HOUR)
    hours, days = user.returns
    assert (days["bags"], days["toys"], days[""]) == (40.0, 1.0, 41.0)
    assert (hours["bags"], hours["toys"], hours[""]) == (40.0, 1.0, 41.0)
    candidates = ["bags", "toys", "hats"]
    rows = pair_features(user, PopulationFeatures.empty(user.now), candidates)
    assert _column(rows, candidates, "recent_days_with")["bags"] == 0.0  # beyond the recent sequence
    assert _column(rows, candidates, "log_return_d") == {
        "bags": np.float32(np.log1p(40.0)),
        "toys": np.float32(np.log1p(1.0)),
        "hats": 0.0,
    }
    assert _column(rows, candidates, "return_d_share") == {
        "bags": np.float32(40 / 41),
        "toys": np.float32(1 / 41),
        "hats": 0.0,
    }


def test_returns_do_not_depend_on_the_arrival_order_within_a_word() -> None:
    """Events delivered in any order within a mask's span (30 hours) count the same; the bound: an event
    more than a whole word older than the newest is not counted."""
    events = [
        EventRecord("s", T0 + i * 1_700.0, "page_view", ("ab"[i % 2], "c"), item_id=str(i)) for i in range(60)
    ]
    forward, backward = FeatureState(), FeatureState()
    for record in events:
        forward.apply(event_ops(record)[0])
    for record in reversed(events):
        backward.apply(event_ops(record)[0])
    now = events[-1].ts + 60.0
    assert user_features(forward, now).returns == user_features(backward, now).returns
    assert user_features(forward, now).returns[0]["c"] == len({int(e.ts // HOUR) for e in events})
    late = EventRecord("s", events[-1].ts + 100 * HOUR, "page_view", ("z",))
    forward.apply(event_ops(late)[0])
    forward.apply(event_ops(EventRecord("s", T0 - 10 * HOUR, "page_view", ("y",)))[0])
    hours = user_features(forward, late.ts + 1).returns[0]
    assert hours["z"] == 1.0 and "y" not in hours  # over a word late: not counted in hours
    assert user_features(forward, late.ts + 1).returns[1]["y"] == 1.0  # yet counted in days
