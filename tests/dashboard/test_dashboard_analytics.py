"""Site analytics by event time (visits, unique visitors, bounce, engaged time, pages, referrers,
UTM, devices, browsers, compared with the previous period), the visitor list, CSV exports, and the
ads delivery report."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from adsite.dashboard.analytics import analytics_report, analytics_roll, period_parse, visitors_list
from adsite.dashboard.models import AnalyticsSession
from tests.dashboard.analytics_data import history_ingest
from tests.dashboard.conftest import ingest, make_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(embedded):
    accepted = history_ingest(days=14, visitors=30)
    analytics_roll()
    return accepted


def test_imported_history_lands_in_the_days_it_happened(history):
    days = set(AnalyticsSession.objects.values_list("day", flat=True))
    assert len(days) >= 10  # not all on the import's day
    week = analytics_report(period=period_parse(range_="7d"))
    month = analytics_report(period=period_parse(range_="30d"))
    assert 0 < week["totals"]["sessions"] < month["totals"]["sessions"]
    assert week["previous"]["sessions"] > 0 and week["change"]["sessions"] is not None
    # exact unique visitors of the range: not the sum of daily uniques
    assert month["totals"]["visitors"] == 30
    assert 0 < month["totals"]["bounce_rate"] < 1 and month["totals"]["engaged_seconds"] > 0
    tables = month["tables"]
    assert {r["key"] for r in tables["referrers"]} >= {"google.com", "news.ycombinator.com", "(direct or none)"}
    assert any("newsletter / email / weekly-digest" == r["key"] for r in tables["campaigns"])
    assert {r["key"] for r in tables["devices"]} == {"desktop", "mobile"}
    assert {"Chrome", "Firefox", "Mobile Safari"} <= {r["key"] for r in tables["browsers"]}
    assert tables["pages"][0]["views"] >= tables["pages"][-1]["views"]
    assert {r["key"] for r in tables["categories"]} >= {"travel", "technology"}
    assert all(r["key"].startswith("/") for r in tables["entry_pages"] + tables["exit_pages"])


def test_a_late_batch_recounts_its_own_day_and_a_roll_is_safe_to_repeat(history):
    period = period_parse(range_="30d")
    before = analytics_report(period=period)["totals"]["sessions"]
    analytics_roll()
    assert analytics_report(period=period)["totals"]["sessions"] == before
    old = timezone.now() - timedelta(days=20)
    ingest([make_event(user_id="late-reader", session_id="late", ts=int(old.timestamp() * 1000))])
    rolled = analytics_roll()
    assert old.date() in rolled
    assert AnalyticsSession.objects.filter(user_id="late-reader", day=old.date()).exists()


def test_analytics_page_tables_and_csv(staff_client, history):
    html = staff_client.get("/dashboard/analytics/?range=30d").content.decode()
    assert 'id="chart-analytics"' in html and "Unique visitors" in html and "Bounce rate" in html
    for table in ("pages", "categories", "entry_pages", "exit_pages", "referrers", "campaigns", "devices", "browsers"):
        assert f'data-analytics-table="{table}"' in html
        response = staff_client.get(f"/dashboard/analytics/?format=csv&range=30d&table={table}")
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert len(rows) >= 2, table
    visitors = list(csv.reader(io.StringIO(
        staff_client.get("/dashboard/analytics/?format=csv&range=30d&table=visitors").content.decode()
    )))
    assert visitors[0][0] == "visitor" and len(visitors) == 31
    today = staff_client.get("/dashboard/analytics/?range=today").content.decode()
    assert "By hour" in today
    start = (timezone.now() - timedelta(days=3)).date()
    custom = staff_client.get(f"/dashboard/analytics/?range=custom&start={start}&end={timezone.now().date()}")
    assert custom.status_code == 200 and str(start) in custom.content.decode()


def test_visitor_list_searches_and_an_unknown_id_is_not_found(staff_client, history):
    listed = visitors_list(query="reader-00")
    assert {r["user_id"] for r in listed["rows"]} == {f"reader-00{i}" for i in range(10)}
    html = staff_client.get("/dashboard/visitors/?q=reader-01").content.decode()
    assert 'data-visitor="reader-012"' in html and 'data-visitor="reader-021"' not in html
    missing = staff_client.get("/dashboard/visitors/?user_id=nobody-here").content.decode()
    assert 'id="visitor-not-found"' in missing and 'id="chart-profile"' not in missing
    known = staff_client.get("/dashboard/visitors/?user_id=reader-003").content.decode()
    assert 'id="chart-interests"' in known and "prior prior" not in known


def test_deleting_a_visitor_removes_their_visits(staff_client, history):
    staff_client.post("/dashboard/visitors/reader-004/delete", {"confirm": "reader-004"})
    assert not AnalyticsSession.objects.filter(user_id="reader-004").exists()


def test_a_page_view_leaves_the_recount_to_the_schedule_unless_it_is_down(staff_client, embedded, settings):
    """Where a schedule rolls the analytics (the beat, or make run's rollup thread), a page view shows
    its last roll and does not wait for today's recount; a schedule that has not rolled for five
    periods is taken to be down and the page view recounts; with no schedule (make dev) it always does."""
    from adsite.dashboard.models import RollupMark, TrafficMinute

    settings.DASHBOARD = {**getattr(settings, "DASHBOARD", {}), "ROLLUP_THREAD": True, "SNAPSHOT_SECONDS": 0}
    analytics_roll()  # the schedule's last roll, before this visit
    ingest([make_event(user_id="morning-reader", session_id="m1")])

    def visits_shown() -> int:
        staff_client.get("/dashboard/analytics/?range=today")
        return AnalyticsSession.objects.filter(user_id="morning-reader").count()

    RollupMark.objects.filter(name="analytics").update(at=timezone.now() - timedelta(seconds=90))
    assert visits_shown() == 0  # due, but the schedule will do it: the page did not wait for it
    assert TrafficMinute.objects.exists()  # the cheap part of the roll (snapshot, minutes) was taken
    RollupMark.objects.filter(name="analytics").update(at=timezone.now() - timedelta(minutes=6))
    assert visits_shown() == 1  # the schedule is down: the page view recounted
    settings.DASHBOARD = {**settings.DASHBOARD, "ROLLUP_THREAD": False}
    settings.CELERY_TASK_ALWAYS_EAGER = True  # no beat either
    ingest([make_event(user_id="morning-reader", session_id="m2")])
    RollupMark.objects.filter(name="analytics").update(at=timezone.now() - timedelta(seconds=90))
    assert visits_shown() == 2  # no schedule at all: every due page view recounts
