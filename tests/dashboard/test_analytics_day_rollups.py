"""The analytics page reads per-day sums (``AnalyticsDay``) over long ranges: what it shows must be what
the visits and the events themselves say, for ranges of days, after a late event recounts an old day,
and after a visitor is deleted."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from adsite.dashboard.analytics import Period, analytics_report, analytics_roll, period_parse
from adsite.dashboard.models import AnalyticsSession
from tests.dashboard.analytics_data import history_ingest
from tests.dashboard.conftest import ingest, make_event

pytestmark = pytest.mark.django_db

# the report's visit tables and the visit fields they group by (None: the UTM triple)
VISIT_TABLES = {
    "entry_pages": "entry_page",
    "exit_pages": "exit_page",
    "referrers": "referrer_host",
    "campaigns": None,
    "devices": "device",
    "browsers": "browser",
}
EMPTY = {"referrers": "(direct or none)", "devices": "(unknown: imported)", "browsers": "(unknown: imported)"}


def raw_report(period: Period) -> dict[str, Any]:
    """The same figures counted straight from the stored visits (and, for the unique visitors and
    page views, from the events): every visit read, every visitor id compared."""
    from tracking.models import Event

    visits = list(AnalyticsSession.objects.filter(day__gte=period.start, day__lt=period.end).values())
    start = datetime.combine(period.start, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(period.end, datetime.min.time(), tzinfo=UTC)
    events = Event.objects.filter(ts__gte=start, ts__lt=end, is_bot=False)
    sessions = len(visits)
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    for table, field in VISIT_TABLES.items():
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for v in visits:
            if field is None:
                if not (v["utm_source"] or v["utm_campaign"]):
                    continue
                key = " / ".join(p for p in (v["utm_source"], v["utm_medium"], v["utm_campaign"]) if p)
            else:
                if table in ("entry_pages", "exit_pages") and not v[field]:
                    continue
                key = v[field] or EMPTY.get(table, "")
            groups[key].append(v)
        tables[table] = {
            key: {
                "sessions": len(group),
                "visitors": len({v["user_id"] for v in group}),
                "bounce_rate": sum(v["bounced"] for v in group) / len(group),
            }
            for key, group in groups.items()
        }
    page_views = Counter(
        e.url.split("bellwether.example", 1)[-1].split("?")[0] for e in events.filter(type="page_view")
    )
    return {
        "visitors": len(set(events.values_list("user_id", flat=True))),
        "visitors_of_visits": len({v["user_id"] for v in visits}),
        "sessions": sessions,
        "pageviews": sum(v["pageviews"] for v in visits),
        "page_view_events": sum(page_views.values()),
        "bounce_rate": sum(v["bounced"] for v in visits) / sessions if sessions else None,
        "engaged_seconds": sum(v["engaged_seconds"] for v in visits) / sessions if sessions else None,
        "tables": tables,
        "pages": dict(page_views),
        "daily_visitors": Counter(
            day for day, _ in {(v["day"], v["user_id"]) for v in visits}
        ),
    }


def assert_report_matches_raw(period: Period, *, pages: bool = True) -> dict[str, Any]:
    shown = analytics_report(period=period, limit=1000)
    raw = raw_report(period)
    totals = shown["totals"]
    assert totals["visitors"] == raw["visitors"] == raw["visitors_of_visits"]
    assert totals["sessions"] == raw["sessions"]
    assert totals["pageviews"] == raw["pageviews"] == raw["page_view_events"]
    if pages:  # (a deleted visitor's page views stay in the hourly page counts: no id is kept there)
        assert {r["key"]: r["views"] for r in shown["tables"]["pages"]} == raw["pages"]
    assert totals["bounce_rate"] == pytest.approx(raw["bounce_rate"])
    assert totals["engaged_seconds"] == pytest.approx(raw["engaged_seconds"])
    for table in VISIT_TABLES:
        rows = {r["key"]: {k: r[k] for k in ("sessions", "visitors", "bounce_rate")} for r in shown["tables"][table]}
        assert rows == raw["tables"][table], table
    if period.days > 1:
        labels = shown["chart"]["labels"]
        daily = dict(zip(labels, shown["chart"]["datasets"][0]["data"], strict=True))
        for day, n in raw["daily_visitors"].items():
            assert daily[f"{day:%b %d}"] == n
    return shown


def test_long_ranges_show_what_the_visits_and_events_say_and_a_late_event_is_counted(embedded):
    history_ingest(days=40, visitors=60, seed=11)
    analytics_roll()
    today = timezone.now().date()
    whole = period_parse(range_="custom", start=str(today - timedelta(days=45)), end=str(today))
    for period in (period_parse(range_="7d"), period_parse(range_="30d"), whole):
        shown = assert_report_matches_raw(period)
    # visitors come back on several days: the range's unique visitors are fewer than the daily sum
    daily_sum = sum(shown["chart"]["datasets"][0]["data"])
    assert shown["totals"]["visitors"] == 60 < daily_sum

    # a late batch: a new reader and a known one, on a day three weeks ago that was already rolled
    old = timezone.now() - timedelta(days=21)
    before = analytics_report(period=whole)["totals"]
    ingest([
        make_event(user_id="late-reader", session_id="late-1", ts=int(old.timestamp() * 1000),
                   url="https://bellwether.example/article/late-news/"),
        make_event(user_id="reader-007", session_id="late-2", ts=int(old.timestamp() * 1000) + 60_000,
                   url="https://bellwether.example/article/late-news/"),
    ])
    assert old.date() in analytics_roll()
    after = assert_report_matches_raw(whole)
    assert after["totals"]["visitors"] == before["visitors"] + 1
    assert after["totals"]["sessions"] == before["sessions"] + 2
    assert {"key": "/article/late-news/", "views": 2} in after["tables"]["pages"]
    assert_report_matches_raw(period_parse(range_="30d"))


def test_deleting_a_visitor_takes_them_out_of_the_day_sums(staff_client, embedded):
    history_ingest(days=20, visitors=25, seed=3)
    analytics_roll()
    period = period_parse(range_="30d")
    before = analytics_report(period=period)["totals"]
    gone_visits = AnalyticsSession.objects.filter(user_id="reader-004").count()
    assert gone_visits
    staff_client.post("/dashboard/visitors/reader-004/delete", {"confirm": "reader-004"})
    after = assert_report_matches_raw(period, pages=False)
    assert after["totals"]["visitors"] == before["visitors"] - 1 == 24
    assert after["totals"]["sessions"] == before["sessions"] - gone_visits
