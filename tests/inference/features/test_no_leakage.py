"""Point-in-time correctness: nothing at or after the prediction time reaches its features."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import numpy as np
from feature_assertions import assert_same_population, assert_same_user

from inference.events import EventRecord
from inference.features import candidate_categories, pair_features
from inference.training.dataset import LabeledPoint, training_points


def tamper_after(events: list[EventRecord], cut: float, seed: int) -> list[EventRecord]:
    """Events at or after ``cut`` reshuffled: categories swapped between events, some dropped, new ones added."""
    rng = random.Random(seed)
    before = [e for e in events if e.ts < cut]
    after = [e for e in events if e.ts >= cut]
    categories = [e.categories for e in after]
    rng.shuffle(categories)
    changed = [
        dataclasses.replace(e, categories=c, type=rng.choice(("page_view", "ad_click", "page_ping")))
        for e, c in zip(after, categories, strict=True)
        if rng.random() > 0.2
    ]
    changed += [
        EventRecord(rng.choice(after).user_id, cut + rng.random() * 10_000, "page_view", ("brand-new",))
        for _ in range(30)
    ]
    return before + sorted(changed, key=lambda e: e.ts)


def features_equal(a: LabeledPoint, b: LabeledPoint) -> None:
    assert_same_user(a.user, b.user)
    assert_same_population(a.population, b.population)
    candidates = candidate_categories(a.user, a.population.popular(5))
    np.testing.assert_array_equal(
        pair_features(a.user, a.population, candidates), pair_features(b.user, b.population, candidates)
    )


def test_changing_events_after_t_changes_no_feature_at_t(stream: Callable[..., list[EventRecord]]) -> None:
    events = stream()
    cut = events[len(events) // 2].ts
    users = sorted({e.user_id for e in events})
    requests = {u: [cut] for u in users}
    original = {p.user_id: p for p in training_points(events, sample_every=None, prediction_times=requests)}
    for seed in range(3):
        tampered = tamper_after(events, cut, seed)
        assert tampered != events
        again = {
            p.user_id: p for p in training_points(tampered, sample_every=None, prediction_times=requests)
        }
        assert original.keys() == again.keys() == set(users)
        for user in users:
            features_equal(original[user], again[user])


def test_sampled_points_before_t_keep_their_features_when_later_events_change(
    stream: Callable[..., list[EventRecord]],
) -> None:
    events = stream()
    cut = events[600].ts

    def before(points: list[LabeledPoint]) -> dict[tuple[str, int], LabeledPoint]:
        return {(p.user_id, p.position): p for p in points if p.ts < cut}

    original = before(list(training_points(events, horizon=5, sample_every=4, min_history=3)))
    tampered = before(
        list(training_points(tamper_after(events, cut, 1), horizon=5, sample_every=4, min_history=3))
    )
    assert len(original) > 30
    assert original.keys() == tampered.keys()
    labels_changed = 0
    for key, point in original.items():
        features_equal(point, tampered[key])
        labels_changed += point.labels != tampered[key].labels
    assert labels_changed > 0  # the labels do look ahead (that is what they are for)


def test_labels_count_the_next_h_interest_events() -> None:
    events = [
        EventRecord("u", 100.0 + i, kind, (cat,))
        for i, (kind, cat) in enumerate(
            [("page_view", "a")] * 5
            + [
                ("page_view", "b"),
                ("page_ping", "z"),
                ("ad_impression", "z"),
                ("click", "b"),
                ("page_view", "c"),
            ]
            + [("page_view", "d")] * 3
        )
    ]
    points = list(training_points(events, horizon=3, sample_every=None, prediction_times={"u": [105.0]}))
    assert len(points) == 1
    assert points[0].labels == {"b": 2, "c": 1}
    assert points[0].user.counts == {"a": 5.0}


def test_return_points_sit_before_each_comeback_with_the_gap_in_their_features():
    """``returns``: a point before every interest event that follows a break of at least
    SESSION_IDLE_S, features from before it (the visitor has been away that long), labels after."""
    from inference.events import EventRecord
    from inference.features.definitions import SESSION_IDLE_S
    from inference.training.dataset import training_points

    day = 86_400.0
    times = [0, 60, 120, 180, 240, 300, 300 + day, 360 + day, 420 + 8 * day, 480 + 8 * day]
    events = [
        EventRecord(user_id="u", ts=1.6e9 + t, type="page_view", categories=(f"c{i % 2}",), item_id=str(i))
        for i, t in enumerate(times)
    ]
    plain = list(training_points(events, horizon=2, sample_every=None))
    points = list(training_points(events, horizon=2, sample_every=None, returns=True))
    assert plain == []
    assert [p.ts for p in points] == [1.6e9 + 300 + day, 1.6e9 + 420 + 8 * day]
    for point in points:
        gap = point.ts - point.user.last_ts
        assert gap >= SESSION_IDLE_S
        assert point.user.events == point.position  # nothing at or after the point in its features
    assert [round((p.ts - p.user.last_ts) / day) for p in points] == [1, 7]
