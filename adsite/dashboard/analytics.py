"""Site analytics by EVENT time: what a site owner reads every morning.

Rollups (written here, read by the analytics page):

- ``AnalyticsSession``: one row per visit (see its docstring), with entry and exit page, referrer,
  UTM tags, device, browser, page views, engaged time and whether it bounced.
- ``AnalyticsHour``: counts per hour of event time (events by type, page views by page and by
  category, ad impressions and clicks by campaign).
- ``AnalyticsDay``: the day's visits summed per row of each report table (entry and exit pages,
  referrers, UTM campaigns, devices, browsers, and the day's totals), each with the day's visitors as a
  set of 64-bit id hashes, and the day's page views per page and category. A range of days reads
  these: sums, and unique visitors as the size of the union of the days' sets (exact, see the model),
  so 180 days cost about what 7 did (docs/benchmarks.md).

``analytics_roll`` recounts whole UTC days: today, and every day that events received since the last
roll belong to (an import of last month's clickstream recounts last month's days). A day is deleted
and written again in one transaction, so a roll is safe to repeat or to run twice at once. The page
reads only these tables, so a 30-day report is a few grouped queries over visits and hours, not a
scan of the events. Deleting a visitor rewrites the day rows of the days they had visits.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.db import transaction
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from adsite.dashboard.models import AnalyticsDay, AnalyticsHour, AnalyticsSession, RollupMark

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


# a site sees a few thousand distinct user agents a day, each parsed once (parsing is ~0.1 ms)
@lru_cache(maxsize=4096)
def _browser(user_agent: str) -> str:
    if not user_agent:
        return ""
    import user_agents

    return (user_agents.parse(user_agent).browser.family or "Other")[:40]


@lru_cache(maxsize=4096)
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


SESSION_FIELDS = (
    "day", "user_id", "session_key", "started_at", "ended_at", "pageviews", "events", "engaged_seconds", "bounced",
    "entry_page", "exit_page", "referrer_host", "utm_source", "utm_medium", "utm_campaign", "device", "browser",
)


def _session_row(day: date, visit: _Visit) -> tuple[Any, ...]:
    query = parse_qs(urlsplit(visit.first_url).query) if visit.first_url else {}
    page_host = (urlsplit(visit.first_url).hostname or "").lower().removeprefix("www.")
    engaged = (
        sum(visit.engaged_ms.values()) / 1000.0
        if visit.engaged_ms
        else (visit.ended_at - visit.started_at).total_seconds()
    )
    return (  # in SESSION_FIELDS order
        day,
        visit.user_id,
        (visit.key or f"gap:{visit.started_at.timestamp():.0f}")[:64],
        visit.started_at,
        visit.ended_at,
        len(visit.pages),
        visit.events,
        round(engaged, 1),
        len(visit.pages) <= 1 and engaged < BOUNCE_ENGAGED_SECONDS,
        visit.pages[0] if visit.pages else "",
        visit.pages[-1] if visit.pages else "",
        _referrer_host(visit.referrer, page_host),
        (query.get("utm_source") or [""])[0][:100],
        (query.get("utm_medium") or [""])[0][:100],
        (query.get("utm_campaign") or [""])[0][:100],
        _device(visit.user_agent),
        _browser(visit.user_agent),
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
    views: Counter[tuple[str, str]] = Counter()
    for (_, dimension, key), n in hours.items():
        if dimension in VIEW_DIMENSIONS:
            views[(dimension, key)] += n
    with transaction.atomic():
        _day_lock(day)
        AnalyticsSession.objects.filter(day=day).delete()
        AnalyticsHour.objects.filter(hour__gte=start, hour__lt=end).delete()
        AnalyticsDay.objects.filter(day=day).delete()
        _rows_insert(AnalyticsSession, SESSION_FIELDS, visits)
        _rows_insert(AnalyticsHour, ("hour", "dimension", "key", "count"), [(h, d, k, n) for (h, d, k), n in hours.items()])
        _rows_insert(AnalyticsDay, DAY_FIELDS, visit_day_rows(day, visits))
        _rows_insert(AnalyticsDay, DAY_FIELDS, [(day, d, k, 0, 0, n, 0.0, 0, b"") for (d, k), n in views.items()])
    return len(visits)


# the report tables summed per day from the visits (``AnalyticsDay``), and the SESSION_FIELDS they read
VISIT_DIMENSIONS = {
    "all": (),
    "entry_page": ("entry_page",),
    "exit_page": ("exit_page",),
    "referrer": ("referrer_host",),
    "campaign": ("utm_source", "utm_medium", "utm_campaign"),
    "device": ("device",),
    "browser": ("browser",),
}
VIEW_DIMENSIONS = ("page", "category")  # page views per day, from the hourly counts
DAY_FIELDS = ("day", "dimension", "key", "sessions", "bounced", "pageviews", "engaged_seconds", "visitors", "visitor_set")
KEY_SEPARATOR = "\x1f"


def visitor_hash(user_id: str) -> int:
    """A visitor id's 64-bit hash, the member of a day's visitor set (stable across processes)."""
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "little")


def visitor_set_pack(hashes: set[int]) -> bytes:
    import numpy as np

    return np.array(sorted(hashes), dtype="<u8").tobytes()


def visitor_sets_union_size(sets: Iterable[bytes]) -> int:
    """How many distinct visitors a range's day sets hold together."""
    import numpy as np

    arrays = [np.frombuffer(bytes(s), dtype="<u8") for s in sets if s]
    if len(arrays) <= 1:  # one day's set is already distinct (most rows of a long tail of pages)
        return int(arrays[0].size) if arrays else 0
    return int(np.unique(np.concatenate(arrays)).size)


def visit_day_rows(day: date, visits: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """One day's visits (rows in SESSION_FIELDS order) summed per row of each report table, in
    DAY_FIELDS order. Rows a table leaves out are not written (a visit without an entry page, one
    without UTM source and campaign)."""
    at = {name: i for i, name in enumerate(SESSION_FIELDS)}
    user, views, engaged, bounced = at["user_id"], at["pageviews"], at["engaged_seconds"], at["bounced"]
    hashes = {v[user]: visitor_hash(v[user]) for v in visits}
    rows: list[tuple[Any, ...]] = []
    for dimension, fields in VISIT_DIMENSIONS.items():
        groups: dict[str, list[Sequence[Any]]] = defaultdict(list)
        for v in visits:
            groups[KEY_SEPARATOR.join(str(v[at[f]]) for f in fields)].append(v)
        for key, group in groups.items():
            if dimension in ("entry_page", "exit_page") and not key:
                continue
            if dimension == "campaign" and not (group[0][at["utm_source"]] or group[0][at["utm_campaign"]]):
                continue
            members = {hashes[v[user]] for v in group}
            rows.append((
                day, dimension, key, len(group), sum(1 for v in group if v[bounced]),
                sum(v[views] for v in group), float(sum(v[engaged] for v in group)),
                len(members), visitor_set_pack(members),
            ))
    return rows


def visit_days_rewrite(*, days: Iterable[date]) -> None:
    """Rewrite the visit rows of ``AnalyticsDay`` from the stored visits of these days (after a
    visitor's visits were deleted; the page and category views are left as they are)."""
    for day in days:
        with transaction.atomic():
            _day_lock(day)
            visits = list(AnalyticsSession.objects.filter(day=day).values_list(*SESSION_FIELDS))
            AnalyticsDay.objects.filter(day=day, dimension__in=list(VISIT_DIMENSIONS)).delete()
            _rows_insert(AnalyticsDay, DAY_FIELDS, visit_day_rows(day, visits))


# pg_advisory_xact_lock's first key for "rewriting one day of analytics" (the second is the day)
DAY_LOCK = 0x616E6C79  # "anly"


def _day_lock(day: date) -> None:
    """Within the day's rewrite transaction, wait for any other rewrite of the same day to commit.

    Two rolls of one day at once (a page view while the beat is down, two workers) both deleted the old
    rows before either committed on PostgreSQL, then both inserted: the day's visits twice (measured:
    598 visits became 1,196). SQLite serialises writers already."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [DAY_LOCK, day.toordinal()])


def _rows_insert(model: Any, fields: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (values in ``fields`` order) with one ``executemany`` per 2,000 rows.

    Why not ``bulk_create``: it builds a model instance per row and prepares every value through its
    field, which was most of a day's recount (3 of 6.5 s for a day of 11,000 events); here only the
    date and datetime columns are adapted, by the backend's own adapters."""
    from django.db import connection

    meta = model._meta
    quote = connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    adapters = [
        connection.ops.adapt_datetimefield_value if f.get_internal_type() == "DateTimeField"
        else connection.ops.adapt_datefield_value if f.get_internal_type() == "DateField"
        else None
        for f in columns
    ]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 2000):
            cursor.executemany(
                sql,
                [
                    tuple(v if adapt is None else adapt(v) for v, adapt in zip(row, adapters, strict=True))
                    for row in rows[start : start + 2000]
                ],
            )


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
    """The analytics part of deleting a visitor's data (on ``tracking.signals.visitor_deleted``): their
    visits, and the day sums and visitor sets of the days they visited."""
    visits = AnalyticsSession.objects.filter(user_id=user_id)
    days = sorted(set(visits.values_list("day", flat=True)))
    visits.delete()
    visit_days_rewrite(days=days)


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


def _days_in(period: Period, dimension: str) -> Any:
    return AnalyticsDay.objects.filter(dimension=dimension, day__gte=period.start, day__lt=period.end)


def _totals(period: Period) -> dict[str, Any]:
    days = _days_in(period, "all")
    agg = days.aggregate(
        sessions=Sum("sessions"), pageviews=Sum("pageviews"), bounced=Sum("bounced"), engaged=Sum("engaged_seconds"),
    )
    sessions = agg["sessions"] or 0
    return {
        "visitors": visitor_sets_union_size(days.values_list("visitor_set", flat=True)),
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


def _top(period: Period, dimension: str, *, limit: int, empty: str) -> list[dict[str, Any]]:
    """The ``limit`` keys of a visit table with the most visits in the period; unique visitors are
    counted for those keys only (the union of their days' visitor sets)."""
    days = _days_in(period, dimension)
    rows = list(
        days.values("key").annotate(n=Sum("sessions"), bounced=Sum("bounced")).order_by("-n", "key")[:limit]
    )
    sets: dict[str, list[bytes]] = defaultdict(list)
    # a CSV export asks for every key: then all of the period's sets, not a list of thousands of keys
    wanted = days if len(rows) > 500 else days.filter(key__in=[row["key"] for row in rows])
    for key, members in wanted.values_list("key", "visitor_set"):
        sets[key].append(members)
    return [
        {
            "key": " / ".join(p for p in row["key"].split(KEY_SEPARATOR) if p) or empty,
            "sessions": row["n"],
            "visitors": visitor_sets_union_size(sets[row["key"]]),
            "bounce_rate": row["bounced"] / row["n"] if row["n"] else None,
        }
        for row in rows
    ]


def _top_views(period: Period, dimension: str, *, limit: int) -> list[dict[str, Any]]:
    rows = _days_in(period, dimension).values("key").annotate(n=Sum("pageviews")).order_by("-n", "key")[:limit]
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
            for day, v, n, pv in _days_in(p, "all").values_list("day", "visitors", "sessions", "pageviews"):
                i = index.get(_utc(day))
                if i is not None:
                    visitors[i], sessions[i], views[i] = v, n, pv
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
    tables = analytics_tables(period=period, limit=limit)
    unknown = _days_in(period, "device").filter(key="").aggregate(n=Sum("sessions"))["n"]
    return {
        "period": period,
        "totals": now,
        "previous": before,
        "change": {k: _change(now[k], before[k]) for k in now},
        "chart": _series(period),
        "tables": tables,
        "has_data": bool(now["sessions"]) or AnalyticsSession.objects.exists(),
        "visits_without_ua": unknown or 0,
    }


def analytics_tables(
    *, period: Period, limit: int = 10, only: Sequence[str] = TABLES
) -> dict[str, list[dict[str, Any]]]:
    """The page's tables (``only`` those named: a CSV export reads its own table, not all eight), from
    the day sums of ``AnalyticsDay``."""
    readers: dict[str, Any] = {
        "pages": lambda: _top_views(period, "page", limit=limit),
        "categories": lambda: _top_views(period, "category", limit=limit),
        "entry_pages": lambda: _top(period, "entry_page", limit=limit, empty=""),
        "exit_pages": lambda: _top(period, "exit_page", limit=limit, empty=""),
        "referrers": lambda: _top(period, "referrer", limit=limit, empty="(direct or none)"),
        "campaigns": lambda: _top(period, "campaign", limit=limit, empty=""),
        "devices": lambda: _top(period, "device", limit=limit, empty="(unknown: imported)"),
        "browsers": lambda: _top(period, "browser", limit=limit, empty="(unknown: imported)"),
    }
    return {name: readers[name]() for name in TABLES if name in only}


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
