"""The overview reads rates and latency percentiles from the difference of two metric snapshots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from adsite.dashboard import series
from adsite.dashboard.rollup import metrics_snapshot_take
from adsite.dashboard.selectors.overview import overview_get
from inference.serving import metrics

pytestmark = pytest.mark.django_db


def test_rates_and_percentiles_come_from_snapshot_differences():
    start = timezone.now() - timedelta(seconds=30)
    metrics_snapshot_take(now=start)
    for _ in range(90):
        metrics.SERVED_TOTAL.labels("gbdt").inc()
        metrics.PREDICT_SECONDS.labels("gbdt", "total").observe(0.0008)
    for _ in range(10):
        metrics.SERVED_TOTAL.labels("prior").inc()
        metrics.FALLBACKS_TOTAL.labels("over_budget").inc()
        metrics.PREDICT_SECONDS.labels("prior", "total").observe(0.02)
    metrics_snapshot_take(now=start + timedelta(seconds=20))
    o = overview_get(window="hour", now=start + timedelta(seconds=21))
    assert o["predictions_per_s"] == pytest.approx(100 / 20)
    assert o["served_by"]["gbdt"] == 90 and o["served_by"]["prior"] == 10
    assert o["fallbacks"] == [{"reason": "over_budget", "count": 10, "rate": "10.0%"}]
    gbdt = next(row for row in o["prediction_latency"] if row["model"] == "gbdt")
    assert 0.5 <= gbdt["p50_ms"] <= 1.0 and gbdt["count"] == 90  # inside the 0.5-1 ms bucket
    prior = next(row for row in o["prediction_latency"] if row["model"] == "prior")
    assert 10 <= prior["p99_ms"] <= 25


def test_a_counter_that_went_down_means_a_restart_and_counts_from_zero():
    assert series.counter_deltas({"a{}": 50.0}, {"a{}": 7.0}) == {"a{}": 7.0}
    assert series.counter_deltas({"a{}": 5.0}, {"a{}": 7.0}) == {"a{}": 2.0}


def test_histogram_quantile_interpolates_inside_the_bucket():
    values = {"h_bucket{le=1.0}": 0.0, "h_bucket{le=2.0}": 10.0, "h_bucket{le=+Inf}": 10.0}
    assert series.histogram_quantiles(values, "h", [0.5])[0.5] == pytest.approx(1.5)
    assert series.histogram_quantiles({}, "h", [0.5])[0.5] is None


def test_requests_per_second_counts_real_http_requests_by_route(client):
    """Every answered request counts, by route (a path no URL pattern matches as 'unresolved', static
    files as 'static files', never an anonymous 'other'), not predictions."""
    start = timezone.now() - timedelta(seconds=30)
    metrics_snapshot_take(now=start)
    for _ in range(7):
        assert client.get("/healthz").status_code == 200
    for _ in range(3):
        assert client.get("/no-such-page/").status_code == 404
    metrics_snapshot_take(now=start + timedelta(seconds=20))
    o = overview_get(window="hour", now=start + timedelta(seconds=21))
    assert o["requests_per_s"] == pytest.approx(10 / 20)
    assert o["predictions_per_s"] == 0
    routes = {row["route"]: row["count"] for row in o["requests_by_route"]}
    assert routes == {"healthz": 7, "unresolved": 3}
    assert sum(p["v"] or 0 for p in o["chart"]["requests"]) == pytest.approx(10 / 20)


def test_routes_show_their_server_side_latency(client, monkeypatch):
    """The busiest-routes table gives each route's p50 and p99 from the middleware's own timing."""
    import time as time_module

    from adsite.ops import views as ops_views

    def slow_database_check():
        time_module.sleep(0.03)  # a readiness probe held up 30 ms by its database
        return None

    monkeypatch.setattr(ops_views, "_database_check", slow_database_check)
    start = timezone.now() - timedelta(seconds=30)
    metrics_snapshot_take(now=start)
    for _ in range(5):
        client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    metrics_snapshot_take(now=start + timedelta(seconds=20))
    o = overview_get(window="hour", now=start + timedelta(seconds=21))
    rows = {row["route"]: row for row in o["requests_by_route"]}
    assert rows["readyz"]["p50_ms"] >= 30 and rows["readyz"]["p99_ms"] >= 30
    assert rows["healthz"]["p99_ms"] is not None and rows["healthz"]["p50_ms"] < rows["readyz"]["p50_ms"]


def test_unrouted_requests_are_named_by_kind():
    from adsite.ops.middleware import _unrouted

    assert _unrouted("/static/dashboard/dashboard.css") == "static files"
    assert _unrouted("/media/ads/banner.svg") == "media files"
    assert _unrouted("/no-such-page/") == "unresolved"


def test_decision_latency_rows_are_by_placement_count_and_only_for_the_window():
    from adsite.ads.metrics import _placements_label
    from adsite.dashboard.selectors.windows import latency_table

    assert [_placements_label(n) for n in (0, 1, 3, 6)] == ["none", "1 placement", "3 placements", "4+ placements"]
    stale = {"h_bucket{placement=1 placement,le=0.01}": 0.0, "h_bucket{placement=1 placement,le=+Inf}": 0.0,
             "h_count{placement=1 placement}": 0.0}
    assert latency_table(stale, "h", "placement") == []
