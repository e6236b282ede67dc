"""Where the training samples lie: the time split's grid of global prediction times."""

from __future__ import annotations

import numpy as np

from inference.events import EventRecord
from inference.models.training import training_samples

T0 = 1_700_000_000.0
HOUR = 3600.0


def _visits(users: int = 12, days: int = 6) -> list[EventRecord]:
    # each user visits twice a day (8 views a few minutes apart), mostly one favourite category
    events = []
    for u in range(users):
        for day in range(days):
            for visit, start in enumerate((9 * HOUR, 20 * HOUR)):
                for i in range(8):
                    category = f"c{u % 3}" if i % 4 else f"c{(u + day + visit) % 5}"
                    ts = T0 + day * 24 * HOUR + start + u * 60 + i * 90
                    events.append(EventRecord(f"u{u}", ts, "page_view", (category,), item_id=f"i{u}{i}"))
    return sorted(events, key=lambda e: e.ts)


def test_time_split_samples_lie_on_a_grid_of_global_times_before_their_labels() -> None:
    events = _visits()
    categories = [f"c{i}" for i in range(5)]
    data = training_samples(events, categories=categories, horizon=10, validation="time", cutoff_step_s=3 * HOUR)
    assert data.fit and data.validation
    cutoff = float(np.quantile([e.ts for e in events], 0.85))
    # every point is a grid time (from the first event for the fit part, from the validation cut-off
    # for the validation part), not an event's time
    assert {round((s.ts - events[0].ts) / (3 * HOUR), 6) % 1 for s in data.fit} == {0.0}
    assert {round((s.ts - cutoff) / (3 * HOUR), 6) % 1 for s in data.validation} == {0.0}
    assert max(s.ts for s in data.fit) < cutoff <= min(s.ts for s in data.validation)
    # a grid time usually falls between visits: most points are hours after the user's last event
    idle = [s.rows[0, list(_names()).index("log_idle_s")] for s in data.fit]
    assert np.median(idle) > np.log1p(HOUR)
    for sample in data.fit:
        assert sample.labels.sum() > 0


def test_event_points_remain_for_the_user_split() -> None:
    events = _visits()
    data = training_samples(events, categories=[f"c{i}" for i in range(5)], horizon=10, validation="user")
    stamps = {e.ts for e in events}
    assert data.fit and all(s.ts in stamps for s in data.fit)  # just before one of the user's events


def _names() -> tuple[str, ...]:
    from inference.features import PAIR_FEATURE_NAMES

    return PAIR_FEATURE_NAMES
