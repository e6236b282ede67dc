"""Site analytics by EVENT time: what a site owner reads every morning.

Rollups (written here, read by the analytics page):

- ``AnalyticsSession``: one row per visit (see its docstring), with entry and exit page, referrer,
  UTM tags, device, browser, page views, engaged time and whether it bounced.
- ``AnalyticsHour``: counts per hour of event time (events by type, page views by page and by
  category, ad impressions and clicks by campaign).

``analytics_roll`` recounts whole UTC days: today, and every day that events received since the last
roll belong to (an import of last month's clickstream recounts last month's days). A day is deleted
and written again in one transaction, so a roll is safe to repeat or to run twice at once. The page
reads only these tables, so a 30-day report is a few grouped queries over visits and hours, not a
scan of the events.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from adsite.dashboard.models import AnalyticsHour, AnalyticsSession, RollupMark

SESSION_GAP = timedelta(minutes=30)
BOUNCE_ENGAGED_SECONDS = 10.0
# a batch received this long before the last roll's mark is looked at again (late commits)
MARK_OVERLAP = timedelta(minutes=2)
RANGES = {"today": 1, "7d": 7, "30d": 30}
PERIOD_CHOICES = (("today", "Today"), ("7d", "7 days"), ("30d", "30 days"))


def _utc(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def page_of(url: str, item_id: str) -> str:
    """A page's path without query or fragment (``/article/x/``); the item id when no URL was sent."""
    if url:
        path = urlsplit(url).path or "/"
        return path[:512]
    return f"item:{item_id}"[:512] if item_id else "(unknown)"


def _referrer_host(referrer: str, page_host: str) -> str:
    if not referrer:
        return ""
    host = (urlsplit(referrer).hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    return "" if not host or host == page_host else host[:200]


def _browser(user_agent: str) -> str:
    if not user_agent:
        return ""
    import user_agents

    return (user_agents.parse(user_agent).browser.family or "Other")[:40]


def _device(user_agent: str) -> str:
    from tracking.api import user_agent_device

    return user_agent_device(user_agent) if user_agent else ""


@dataclass
class _Visit:
    user_id: str
    key: str
    started_at: datetime
    ended_at: datetime
    pages: list[str]
    events: int
    engaged_ms: dict[str, float]
    first_url: str
    referrer: str
    user_agent: str


def _visits(events: Iterable[Any]) -> Iterable[_Visit]:
    """Group one day's events (by visitor, then time) into visits."""
    current: _Visit | None = None
    for e in events:
        key = e.session_id or ""
        same = (
            current is not None
            and current.user_id == e.user_id
            and (current.key == key if key or current.key else e.ts - current.ended_at <= SESSION_GAP)
        )
        if not same:
            if current is not None:
                yield current
            current = _Visit(e.user_id, key, e.ts, e.ts, [], 0, {}, e.url, e.referrer, e.user_agent)
        assert current is not None
        current.ended_at = max(current.ended_at, e.ts)
        current.events += 1
        if not current.user_agent and e.user_agent:
            current.user_agent = e.user_agent
        if e.type == "page_view":
            current.pages.append(page_of(e.url, e.item_id))
            if not current.first_url:
                current.first_url, current.referrer = e.url, e.referrer
        elif e.type == "page_ping":
            engaged = (e.properties or {}).get("engaged_ms")
            if isinstance(engaged, int | float) and math.isfinite(engaged) and engaged >= 0:
                page = page_of(e.url, e.item_id)
                current.engaged_ms[page] = max(current.engaged_ms.get(page, 0.0), float(engaged))
    if current is not None:
        yield current


def _session_row(day: date, visit: _Visit) -> AnalyticsSession:
    query = parse_qs(urlsplit(visit.first_url).query) if visit.first_url else {}
    page_host = (urlsplit(visit.first_url).hostname or "").lower().removeprefix("www.")
    engaged = (
        sum(visit.engaged_ms.values()) / 1000.0
        if visit.engaged_ms
        else (visit.ended_at - visit.started_at).total_seconds()
    )
    return AnalyticsSession(
        day=day,
        user_id=visit.user_id,
        session_key=(visit.key or f"gap:{visit.started_at.timestamp():.0f}")[:64],
        started_at=visit.started_at,
        ended_at=visit.ended_at,
        pageviews=len(visit.pages),
        events=visit.events,
        engaged_seconds=round(engaged, 1),
        bounced=len(visit.pages) <= 1 and engaged < BOUNCE_ENGAGED_SECONDS,
        entry_page=visit.pages[0] if visit.pages else "",
        exit_page=visit.pages[-1] if visit.pages else "",
        referrer_host=_referrer_host(visit.referrer, page_host),
        utm_source=(query.get("utm_source") or [""])[0][:100],
        utm_medium=(query.get("utm_medium") or [""])[0][:100],
        utm_campaign=(query.get("utm_campaign") or [""])[0][:100],
        device=_device(visit.user_agent),
        browser=_browser(visit.user_agent),
    )


def analytics_day_roll(*, day: date) -> int:
    """Recount one UTC day of event time into visits and hourly counts; returns the visits written."""
    from tracking.api import analytics_events_iter

    start = _utc(day)
    end = start + timedelta(days=1)
    hours: Counter[tuple[datetime, str, str]] = Counter()

    def counted(events: Iterable[Any]) -> Iterable[Any]:
        for e in events:
            hour = e.ts.replace(minute=0, second=0, microsecond=0)
            hours[(hour, "type", e.type)] += 1
            if e.type == "page_view":
                hours[(hour, "page", page_of(e.url, e.item_id))] += 1
                for category in e.categories or []:
                    hours[(hour, "category", str(category)[:512])] += 1
            elif e.type in ("ad_impression", "ad_click") and isinstance(e.ad, dict):
                hours[(hour, e.type, str(e.ad.get("campaign_id") or "")[:512])] += 1
            yield e

    visits = [_session_row(day, v) for v in _visits(counted(analytics_events_iter(since=start, until=end)))]
    with transaction.atomic():
        AnalyticsSession.objects.filter(day=day).delete()
        AnalyticsHour.objects.filter(hour__gte=start, hour__lt=end).delete()
        AnalyticsSession.objects.bulk_create(visits, batch_size=2000)
        AnalyticsHour.objects.bulk_create(
            [AnalyticsHour(hour=h, dimension=d, key=k, count=n) for (h, d, k), n in hours.items()],
            batch_size=2000,
        )
    return len(visits)


def analytics_roll(*, now: datetime | None = None, days: Sequence[date] | None = None) -> list[date]:
    """Recount today and every day touched by events received since the last roll (or ``days``)."""
    from tracking.api import event_days_received

    now = now or timezone.now()
    if days is None:
        mark = RollupMark.objects.filter(name="analytics").values_list("at", flat=True).first()
        since = (mark - MARK_OVERLAP) if mark else datetime(1970, 1, 1, tzinfo=now.tzinfo)
        days = sorted(set(event_days_received(since=since, until=now + timedelta(seconds=1))) | {now.date()})
    for day in days:
        analytics_day_roll(day=day)
    RollupMark.objects.update_or_create(name="analytics", defaults={"at": now})
    return list(days)


def analytics_roll_if_stale(*, now: datetime | None = None) -> list[date]:
    """``analytics_roll`` when the last one is older than ``ANALYTICS_SECONDS``."""
    from adsite.dashboard.conf import dashboard_setting

    now = now or timezone.now()
    mark = RollupMark.objects.filter(name="analytics").values_list("at", flat=True).first()
    if mark is not None and timedelta(0) <= now - mark < timedelta(seconds=float(dashboard_setting("ANALYTICS_SECONDS"))):
        return []
    return analytics_roll(now=now)


def visitor_analytics_forget(user_id: str) -> None:
    """The analytics part of deleting a visitor's data (on ``tracking.signals.visitor_deleted``)."""
    AnalyticsSession.objects.filter(user_id=user_id).delete()


# --- reads ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """A reporting period of whole UTC days, ``[start, end)``, and the one just before it."""

    name: str
    start: date
    end: date  # exclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def previous(self) -> Period:
        return Period("previous", self.start - timedelta(days=self.days), self.start)

    @property
    def last(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def label(self) -> str:
        last = self.end - timedelta(days=1)
        return f"{self.start:%Y-%m-%d}" if self.days == 1 else f"{self.start:%Y-%m-%d} – {last:%Y-%m-%d}"


def period_parse(*, range_: str, start: str = "", end: str = "", today: date | None = None) -> Period:
    """``today``, ``7d``, ``30d`` (ending today), or ``custom`` from ``start`` to ``end`` inclusive
    (ISO dates; at most 366 days; swapped when given backwards)."""
    today = today or timezone.now().date()
    if range_ == "custom":
        try:
            a, b = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError:
            a = b = today
        a, b = min(a, b), max(a, b)
        a = max(a, b - timedelta(days=365))
        return Period("custom", a, b + timedelta(days=1))
    days = RANGES.get(range_, 7)
    return Period(range_ if range_ in RANGES else "7d", today - timedelta(days=days - 1), today + timedelta(days=1))


def _visits_in(period: Period) -> Any:
    return AnalyticsSession.objects.filter(day__gte=period.start, day__lt=period.end)


def _hours_in(period: Period) -> Any:
    return AnalyticsHour.objects.filter(hour__gte=_utc(period.start), hour__lt=_utc(period.end))


def _totals(period: Period) -> dict[str, Any]:
    agg = _visits_in(period).aggregate(
        visitors=Count("user_id", distinct=True),
        sessions=Count("id"),
        pageviews=Sum("pageviews"),
        bounced=Count("id", filter=Q(bounced=True)),
        engaged=Sum("engaged_seconds"),
    )
    sessions = agg["sessions"] or 0
    return {
        "visitors": agg["visitors"] or 0,
        "sessions": sessions,
        "pageviews": agg["pageviews"] or 0,
        "bounce_rate": (agg["bounced"] or 0) / sessions if sessions else None,
        "engaged_seconds": (agg["engaged"] or 0.0) / sessions if sessions else None,
        "pages_per_session": (agg["pageviews"] or 0) / sessions if sessions else None,
    }


def _change(now: float | None, before: float | None) -> float | None:
    if now is None or before in (None, 0):
        return None
    return (now - before) / before  # type: ignore[operator]


def _top(query: Any, field: str, *, limit: int, empty: str) -> list[dict[str, Any]]:
    rows = (
        query.values(field)
        .annotate(sessions=Count("id"), visitors=Count("user_id", distinct=True), bounced=Count("id", filter=Q(bounced=True)))
        .order_by("-sessions", field)[:limit]
    )
    return [
        {
            "key": row[field] or empty,
            "sessions": row["sessions"],
            "visitors": row["visitors"],
            "bounce_rate": row["bounced"] / row["sessions"] if row["sessions"] else None,
        }
        for row in rows
    ]


def _top_hours(period: Period, dimension: str, *, limit: int) -> list[dict[str, Any]]:
    rows = (
        _hours_in(period).filter(dimension=dimension)
        .values("key").annotate(n=Sum("count")).order_by("-n", "key")[:limit]
    )
    return [{"key": row["key"], "views": row["n"]} for row in rows]


def _series(period: Period) -> dict[str, Any]:
    """Visitors, visits and page views per day (per hour for a one-day period), this period and the
    previous one aligned by position."""
    hourly = period.days == 1

    def buckets(p: Period) -> list[datetime]:
        start = _utc(p.start)
        n = 24 if hourly else p.days
        step = timedelta(hours=1) if hourly else timedelta(days=1)
        return [start + step * i for i in range(n)]

    def counts(p: Period) -> tuple[list[int], list[int], list[int]]:
        slots = buckets(p)
        index = {s: i for i, s in enumerate(slots)}
        visitors, sessions, views = [0] * len(slots), [0] * len(slots), [0] * len(slots)
        if hourly:
            from django.db.models.functions import TruncHour

            rows = (
                _visits_in(p).annotate(slot=TruncHour("started_at")).values("slot")
                .annotate(v=Count("user_id", distinct=True), s=Count("id"))
            )
            for row in rows:
                i = index.get(row["slot"])
                if i is not None:
                    visitors[i], sessions[i] = row["v"], row["s"]
            for row in _hours_in(p).filter(dimension="type", key="page_view").values("hour").annotate(n=Sum("count")):
                i = index.get(row["hour"])
                if i is not None:
                    views[i] = row["n"]
        else:
            for row in _visits_in(p).values("day").annotate(v=Count("user_id", distinct=True), s=Count("id"), pv=Sum("pageviews")):
                i = index.get(_utc(row["day"]))
                if i is not None:
                    visitors[i], sessions[i], views[i] = row["v"], row["s"], row["pv"] or 0
        return visitors, sessions, views

    now_v, now_s, now_p = counts(period)
    before_v, _, _ = counts(period.previous)
    labels = [s.strftime("%H:00" if hourly else "%b %d") for s in buckets(period)]
    return {
        "labels": labels,
        "datasets": [
            {"label": "Visitors", "data": now_v},
            {"label": "Visits", "data": now_s},
            {"label": "Page views", "data": now_p},
            {"label": "Visitors, previous period", "data": before_v, "borderDash": [5, 4]},
        ],
    }


TABLES = (
    "pages", "categories", "entry_pages", "exit_pages", "referrers", "campaigns", "devices", "browsers",
)
# the page's tiles (key, label, format) and tables (name, title, (first column, "views" or "visits"))
TILES = (
    ("visitors", "Unique visitors", "int"),
    ("sessions", "Visits", "int"),
    ("pageviews", "Page views", "int"),
    ("pages_per_session", "Pages per visit", "dec"),
    ("bounce_rate", "Bounce rate", "pct"),
    ("engaged_seconds", "Engaged time per visit", "sec"),
)
TABLE_TITLES = (
    ("pages", "Top pages", ("Page", "views")),
    ("categories", "Top categories", ("Category", "views")),
    ("entry_pages", "Entry pages", ("Page", "visits")),
    ("exit_pages", "Exit pages", ("Page", "visits")),
    ("referrers", "Referrers", ("Referring site", "visits")),
    ("campaigns", "UTM campaigns", ("source / medium / campaign", "visits")),
    ("devices", "Devices", ("Device", "visits")),
    ("browsers", "Browsers", ("Browser", "visits")),
)


def analytics_report(*, period: Period, limit: int = 10) -> dict[str, Any]:
    """Totals against the previous period, the chart, and every table of the analytics page."""
    now, before = _totals(period), _totals(period.previous)
    visits = _visits_in(period)
    tables = analytics_tables(period=period, limit=limit)
    return {
        "period": period,
        "totals": now,
        "previous": before,
        "change": {k: _change(now[k], before[k]) for k in now},
        "chart": _series(period),
        "tables": tables,
        "has_data": bool(now["sessions"]) or AnalyticsSession.objects.exists(),
        "visits_without_ua": visits.filter(device="").count(),
    }


def analytics_tables(*, period: Period, limit: int = 10) -> dict[str, list[dict[str, Any]]]:
    visits = _visits_in(period)
    campaigns = (
        visits.exclude(utm_source="", utm_campaign="")
        .values("utm_source", "utm_medium", "utm_campaign")
        .annotate(sessions=Count("id"), visitors=Count("user_id", distinct=True), bounced=Count("id", filter=Q(bounced=True)))
        .order_by("-sessions")[:limit]
    )
    return {
        "pages": _top_hours(period, "page", limit=limit),
        "categories": _top_hours(period, "category", limit=limit),
        "entry_pages": _top(visits.exclude(entry_page=""), "entry_page", limit=limit, empty=""),
        "exit_pages": _top(visits.exclude(exit_page=""), "exit_page", limit=limit, empty=""),
        "referrers": _top(visits, "referrer_host", limit=limit, empty="(direct or none)"),
        "campaigns": [
            {
                "key": " / ".join(v for v in (row["utm_source"], row["utm_medium"], row["utm_campaign"]) if v),
                "sessions": row["sessions"],
                "visitors": row["visitors"],
                "bounce_rate": row["bounced"] / row["sessions"] if row["sessions"] else None,
            }
            for row in campaigns
        ],
        "devices": _top(visits, "device", limit=limit, empty="(unknown: imported)"),
        "browsers": _top(visits, "browser", limit=limit, empty="(unknown: imported)"),
    }


def visitors_list(
    *, query: str = "", period: Period | None = None, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    """Visitors seen in the period (or ever), most recent first, their id containing ``query``."""
    rows = AnalyticsSession.objects.all()
    if period is not None:
        rows = rows.filter(day__gte=period.start, day__lt=period.end)
    if query:
        rows = rows.filter(user_id__icontains=query)
    grouped = (
        rows.values("user_id")
        .annotate(
            visits=Count("id"), pageviews=Sum("pageviews"), engaged=Sum("engaged_seconds"),
            first_seen=Min("started_at"), last_seen=Max("ended_at"),
        )
        .order_by("-last_seen", "user_id")
    )
    page = list(grouped[offset : offset + limit + 1])
    return {
        "rows": page[:limit],
        "more": len(page) > limit,
        "offset": offset,
        "next_offset": offset + limit if len(page) > limit else None,
        "previous_offset": max(0, offset - limit) if offset else None,
    }


def visitor_known(*, user_id: str) -> bool:
    """Whether anything is stored for this id (an event, a rolled-up visit, a kept ad decision)."""
    from adsite.ads.selectors import decision_explanations_recent
    from tracking.api import user_events_recent

    return (
        bool(user_events_recent(user_id=user_id, limit=1))
        or AnalyticsSession.objects.filter(user_id=user_id).exists()
        or bool(decision_explanations_recent(user_id=user_id, limit=1))
    )
