"""Field-by-field comparison of two read-outs (floats to a relative 1e-9)."""

from __future__ import annotations

import pytest

from inference.features import PopulationFeatures, UserFeatures

REL = 1e-9


def assert_same_user(offline: UserFeatures, online: UserFeatures) -> None:
    assert offline.now == online.now
    assert offline.events == online.events
    assert offline.last_ts == online.last_ts
    assert offline.counts == online.counts
    for a, b in zip(offline.decayed, online.decayed, strict=True):
        assert a.keys() == b.keys()
        assert a == pytest.approx(b, rel=REL, abs=1e-300)
    for a, b in zip(offline.decayed_share, online.decayed_share, strict=True):
        assert a == pytest.approx(b, rel=REL)
    assert offline.last_seen_ts == online.last_seen_ts
    assert offline.events_since_seen == online.events_since_seen
    assert offline.recent == online.recent
    assert offline.type_counts == online.type_counts
    assert offline.behaviour == online.behaviour
    assert offline.ad_impressions == online.ad_impressions
    assert offline.ad_clicks == online.ad_clicks
    assert offline.returns == online.returns
    assert offline.session_events == online.session_events
    assert offline.session_engaged_s == pytest.approx(online.session_engaged_s, rel=REL)
    assert (offline.device, offline.hour_of_day, offline.day_of_week) == (
        online.device,
        online.hour_of_day,
        online.day_of_week,
    )


def assert_same_population(offline: PopulationFeatures, online: PopulationFeatures) -> None:
    assert offline.counts == online.counts
    assert offline.total == online.total
    assert offline.ranking == online.ranking
    assert offline.share_1d == pytest.approx(online.share_1d, rel=REL)
    assert offline.share_7d == pytest.approx(online.share_7d, rel=REL)
