"""The dashboard's rollups and page reads at months of traffic.

    ADSITE_VAR_DIR=/tmp/scratch [DATABASE_URL=postgres://.../scratch] DJANGO_SECRET_KEY=bench-... \
        python -m benchmarks.analytics [--days 180] [--visits-per-day 1500] [--repeat 5] [--json OUT]

Migrates the database named by ``DATABASE_URL`` (PostgreSQL; use a scratch database: the events and the
dashboard's tables are emptied first) or, without it, a SQLite file under ``ADSITE_VAR_DIR``, seeds the
demo campaigns, and writes ``--days`` days of live-looking traffic ending now: ``--visits-per-day`` visits
a day on average (fewer at weekends, growing over the months), each a session of page views with
engaged-time pings, ad impressions and the odd ad click, by returning and new visitors with real browser
user agents, referrers and UTM tags; received a few seconds after it happened (on PostgreSQL into the
day partitions a live site would have). The ads ledger's running totals per campaign and day
(``AdsDay``) are written for the same days. Then it times, with the load average beside each figure:

- the backfill: ``analytics_roll`` with no mark (every day recounted, as on the first start after an
  upgrade or a big import);
- the steady roll the beat does every minute (``analytics_roll``: the days touched by events received
  since the last roll, today always), and one past day's recount;
- the dashboard's pages as a staff user reads them (Django's test client, whole stack, rollups fresh so
  no page pays for a roll): analytics for today, 7 days, 30 days and the whole span, their CSV exports,
  the visitor list and a search, the delivery report for 30 days and the whole span.

Prints a Markdown table and, with ``--json``, writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Mobile/15E148 Safari/604.1",
)
AGENT_WEIGHTS = (30, 20, 22, 12, 8, 6, 2)
SOURCES = (  # (referrer, UTM tags of the landing page), weighted like a small publication's traffic
    ("", ""),
    ("https://www.google.com/", ""),
    ("https://www.bing.com/", ""),
    ("https://news.ycombinator.com/", ""),
    ("https://www.reddit.com/r/travel/", ""),
    ("", "?utm_source=newsletter&utm_medium=email&utm_campaign=weekly-digest"),
    ("https://t.co/x", "?utm_source=twitter&utm_medium=social&utm_campaign=spring-launch"),
    ("https://www.facebook.com/", "?utm_source=facebook&utm_medium=social&utm_campaign=autumn-series"),
)
SOURCE_WEIGHTS = (35, 30, 5, 4, 6, 10, 6, 4)
HOST = "https://bellwether.example"


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _setup(var_dir: Path) -> None:
    var_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ADSITE_VAR_DIR", str(var_dir))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + "x" * 50)
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _fresh_database() -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", "--noinput", verbosity=0)
    from adsite.dashboard.models import (
        AdsDay,
        AnalyticsDay,
        AnalyticsHour,
        AnalyticsSession,
        MetricSnapshot,
        RollupMark,
        TrafficMinute,
    )
    from tracking.models import Event

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE tracking_event")  # its trigger empties the dedupe keys
        else:
            cursor.execute(f"DELETE FROM {Event._meta.db_table}")
    for model in (AnalyticsSession, AnalyticsHour, AnalyticsDay, RollupMark, AdsDay, MetricSnapshot, TrafficMinute):
        model.objects.all().delete()
    call_command("seed_ads", verbosity=0)


def traffic_write(*, days: int, visits_per_day: int, now: datetime, seed: int = 19) -> dict[str, Any]:
    """Write ``days`` days of traffic ending at ``now``; returns what was written."""
    from django.db import connection, transaction

    from adsite.ads.models import Campaign
    from tracking.storage import events_insert_count

    rng = random.Random(seed)
    categories = _category_slugs()
    articles = [(f"/article/story-{i:03d}/", [categories[(i * 7) % len(categories)]]) for i in range(360)]
    sections = [(f"/category/{slug}/", [slug]) for slug in categories]
    campaigns = list(Campaign.objects.values_list("id", flat=True)) or [1]
    first_day = now.date() - timedelta(days=days - 1)
    if connection.vendor == "postgresql":
        from tracking.partitions import day_partitions_create

        with transaction.atomic(), connection.cursor() as cursor:
            day_partitions_create(cursor, [first_day + timedelta(days=i) for i in range(days + 1)])
    pool = max(100, visits_per_day * 12)  # visitors who come back (a heavy tail of regulars)
    written = 0
    visits = 0
    batch: list[tuple[Any, ...]] = []
    started = time.perf_counter()

    def flush() -> None:
        nonlocal written, batch
        if batch:
            with transaction.atomic():
                written += events_insert_count(batch)
            batch = []

    for d in range(days):
        day = first_day + timedelta(days=d)
        day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        growth = 0.6 + 0.8 * d / max(1, days - 1)  # the site grew over the months
        weekend = 0.7 if day.weekday() >= 5 else 1.0
        span = min(86_400.0, (now - day_start).total_seconds() - 600)
        if span <= 0:
            continue
        n_visits = int(visits_per_day * growth * weekend * span / 86_400.0)
        for _ in range(n_visits):
            visits += 1
            regular = rng.random() < 0.6
            user = f"v{int(rng.paretovariate(1.2) * 7) % pool:06d}" if regular else f"n{uuid.uuid4().hex[:12]}"
            agent = rng.choices(AGENTS, AGENT_WEIGHTS)[0]
            referrer, tags = rng.choices(SOURCES, SOURCE_WEIGHTS)[0]
            session = uuid.uuid4().hex[:16]
            at = day_start + timedelta(seconds=rng.uniform(0, span))
            for n in range(rng.choices((1, 2, 3, 4, 6, 9), (45, 20, 13, 10, 8, 4))[0]):
                path, cats = rng.choice(sections) if rng.random() < 0.15 else rng.choice(articles)
                if n == 0 and rng.random() < 0.2:
                    path, cats = "/", []
                url = f"{HOST}{path}{tags if n == 0 else ''}"
                ts = int(at.timestamp() * 1000)
                received = ts * 1000 + rng.randint(50_000, 4_000_000)
                common = (user, session)
                batch.append(_row("page_view", *common, ts, received, url, referrer if n == 0 else "", path, cats,
                                  None, {}, agent))
                engaged = rng.choice((2_000, 6_000, 15_000, 40_000, 90_000, 180_000))
                batch.append(_row("page_ping", *common, ts + engaged, received + engaged * 1000, url, "", path, cats,
                                  None, {"engaged_ms": engaged}, agent))
                for placement in ("leaderboard", "in_article"):
                    if rng.random() < 0.55:
                        ad = {"campaign_id": str(rng.choice(campaigns)), "placement_id": placement, "creative_id": "1"}
                        batch.append(_row("ad_impression", *common, ts + 1500, received + 1_500_000, url, "", path, [],
                                          ad, {}, agent))
                        if rng.random() < 0.01:
                            batch.append(_row("ad_click", *common, ts + 9000, received + 9_000_000, url, "", path, [],
                                              ad, {}, agent))
                at += timedelta(milliseconds=engaged + rng.randint(3_000, 60_000))
            if len(batch) >= 5000:
                flush()
    flush()
    elapsed = time.perf_counter() - started
    ads_days = _ads_days_write(first_day=first_day, days=days, campaigns=campaigns, rng=rng)
    return {"events": written, "visits": visits, "seconds": elapsed, "ads_days": ads_days,
            "first_day": first_day.isoformat(), "last_day": now.date().isoformat()}


def _row(type_: str, user: str, session: str, ts: int, received_us: int, url: str, referrer: str, path: str,
         categories: list[str], ad: dict[str, str] | None, properties: dict[str, Any], agent: str) -> tuple[Any, ...]:
    from tracking.storage import categories_json, json_compact

    return (str(uuid.uuid4()), type_, user, session, ts, received_us, url, referrer, path.strip("/").split("/")[-1],
            categories_json(tuple(categories)), None if ad is None else json_compact(ad), json_compact(properties),
            False, "203.0.113.0", agent, "tracker")


def _category_slugs() -> list[str]:
    from adsite.content.models import Category

    slugs = list(Category.objects.filter(parent__isnull=True).values_list("slug", flat=True)[:30])
    return slugs or [f"topic-{i}" for i in range(30)]


def _ads_days_write(*, first_day: date, days: int, campaigns: list[int], rng: random.Random) -> int:
    """The ads ledger's running totals per campaign at the end of each day, as the rollup records them."""
    from adsite.dashboard.models import AdsDay

    totals = {c: [0, 0, 0, 0.0] for c in campaigns}
    rows = []
    for d in range(days):
        for c in campaigns:
            served = rng.randint(200, 4000)
            viewable = int(served * rng.uniform(0.45, 0.75))
            clicks = int(served * rng.uniform(0.002, 0.02))
            t = totals[c]
            t[0] += served
            t[1] += viewable
            t[2] += clicks
            t[3] += served * rng.uniform(0.5, 4.0) / 1000
            rows.append(AdsDay(day=first_day + timedelta(days=d), campaign=str(c), served=t[0], viewable=t[1],
                               clicks=t[2], spend=round(t[3], 4)))
    AdsDay.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def report_from_visits(period: Any, *, limit: int = 10) -> dict[str, Any]:
    """The analytics page's figures as it read them before the day sums (``AnalyticsDay``): every
    visit row of the period and the one before, distinct visitors counted per table row by the
    database. Kept here as the peer the day sums are timed against (and checked equal to)."""
    from django.db.models import Count, Q, Sum

    from adsite.dashboard.analytics import _utc
    from adsite.dashboard.models import AnalyticsHour, AnalyticsSession

    def visits_in(p: Any) -> Any:
        return AnalyticsSession.objects.filter(day__gte=p.start, day__lt=p.end)

    def totals(p: Any) -> dict[str, Any]:
        return dict(visits_in(p).aggregate(visitors=Count("user_id", distinct=True), sessions=Count("id"),
                                           pageviews=Sum("pageviews"), bounced=Count("id", filter=Q(bounced=True)),
                                           engaged=Sum("engaged_seconds")))

    def top(query: Any, *fields: str) -> list[dict[str, Any]]:
        return list(query.values(*fields).annotate(
            sessions=Count("id"), visitors=Count("user_id", distinct=True), bounced=Count("id", filter=Q(bounced=True)),
        ).order_by("-sessions", *fields)[:limit])

    def views(dimension: str) -> list[dict[str, Any]]:
        hours = AnalyticsHour.objects.filter(hour__gte=_utc(period.start), hour__lt=_utc(period.end), dimension=dimension)
        return list(hours.values("key").annotate(n=Sum("count")).order_by("-n", "key")[:limit])

    visits = visits_in(period)
    return {
        "totals": totals(period),
        "previous": totals(period.previous),
        "daily": {p.name: list(visits_in(p).values("day").annotate(v=Count("user_id", distinct=True), s=Count("id"),
                                                                    pv=Sum("pageviews")))
                  for p in (period, period.previous)},
        "tables": {
            "pages": views("page"),
            "categories": views("category"),
            "entry_pages": top(visits.exclude(entry_page=""), "entry_page"),
            "exit_pages": top(visits.exclude(exit_page=""), "exit_page"),
            "referrers": top(visits, "referrer_host"),
            "campaigns": top(visits.exclude(utm_source="", utm_campaign=""), "utm_source", "utm_medium", "utm_campaign"),
            "devices": top(visits, "device"),
            "browsers": top(visits, "browser"),
        },
        "visits_without_ua": visits.filter(device="").count(),
    }


def reads_compare(*, periods: list[tuple[str, Any]], rounds: int) -> list[dict[str, Any]]:
    """The analytics report from the day sums against ``report_from_visits``, rounds interleaved
    (A B, B A, ...), after checking they agree on the totals and every table's visits and visitors."""
    from adsite.dashboard.analytics import analytics_report

    results = []
    for name, period in periods:
        new, old = analytics_report(period=period), report_from_visits(period)
        for side in ("totals", "previous"):
            assert new[side]["visitors"] == old[side]["visitors"] and new[side]["sessions"] == old[side]["sessions"], name
        for table, rows in new["tables"].items():
            counts = [(r.get("sessions"), r.get("visitors"), r.get("views")) for r in rows]
            before = [(r.get("sessions"), r.get("visitors"), r.get("n")) for r in old["tables"][table]]
            assert counts == before, (name, table)
        times: dict[str, list[float]] = {"day sums": [], "visit rows": []}
        for i in range(rounds):
            order = [("day sums", lambda p=period: analytics_report(period=p)), ("visit rows", lambda p=period: report_from_visits(p))]
            for label, fn in order if i % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                fn()
                times[label].append((time.perf_counter() - started) * 1000)
        results.append({"range": name, **{k: statistics.median(v) for k, v in times.items()},
                        "rounds": rounds, "load": load_average()})
    return results


def timed(fn: Callable[[], Any], *, repeat: int) -> dict[str, float]:
    """Median and worst wall time of ``repeat`` calls after one warm-up call, in ms."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": statistics.median(times), "max_ms": max(times)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--visits-per-day", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default="")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the traffic and rollups a previous run left in the database: time the rolls and reads only")
    parser.add_argument("--compare", type=int, default=0, metavar="ROUNDS",
                        help="also time the analytics report from the day sums against the visit rows it was read "
                             "from before, ROUNDS rounds interleaved, for 7 days, 30 days and the whole span")
    parser.add_argument("--var", default=os.environ.get("BENCH_VAR", "/tmp/adsite-bench") + "/analytics")
    args = parser.parse_args(argv)
    _setup(Path(args.var))

    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from adsite.dashboard.analytics import analytics_day_roll, analytics_roll
    from adsite.dashboard.models import AnalyticsDay, AnalyticsHour, AnalyticsSession
    from adsite.dashboard.rollup import rollup_refresh

    if not args.reuse:
        _fresh_database()
    now = timezone.now()
    figures: dict[str, Any] = {"database": connection.vendor, "days": args.days, "visits_per_day": args.visits_per_day,
                               "date": now.isoformat(timespec="minutes"), "cores": os.cpu_count(),
                               "load_before": load_average(), "rows": []}
    rows: list[dict[str, str]] = figures["rows"]

    def out(what: str, figure: str, note: str = "") -> None:
        rows.append({"what": what, "figure": figure, "note": note})
        print(f"| {what} | {figure} | {note} |", flush=True)

    print(f"database {connection.vendor}; {args.days} days x {args.visits_per_day} visits/day; "
          f"load average {load_average()}\n\n| what | figure | note |\n|---|---|---|", flush=True)
    if args.reuse:
        from tracking.models import Event

        out("traffic kept from the previous run", f"{Event.objects.count():,} events", "")
    else:
        wrote = traffic_write(days=args.days, visits_per_day=args.visits_per_day, now=now)
        figures["traffic"] = wrote
        out("traffic written", f"{wrote['events']:,} events, {wrote['visits']:,} visits, {wrote['first_day']} to "
            f"{wrote['last_day']}", f"{wrote['events'] / wrote['seconds']:,.0f} events/s; load {load_average()}")

        started = time.perf_counter()
        rolled = analytics_roll(now=timezone.now())
        backfill = time.perf_counter() - started
        out("backfill: every day recounted (`analytics_roll`, no mark)",
            f"{backfill:.1f} s for {len(rolled)} days ({wrote['events'] / backfill:,.0f} events/s)",
            f"load {load_average()}")
        figures["backfill_s"] = backfill
    if connection.vendor == "postgresql":
        # what autovacuum does after a bulk load, done now: plans made on an unanalysed table's
        # estimates (a hundred rows for 290,000) are not the ones a running site gets
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE tracking_event; ANALYZE dashboard_analyticssession; ANALYZE dashboard_analyticshour; "
                           "ANALYZE dashboard_analyticsday; ANALYZE dashboard_adsday")
    sessions, hours, days = AnalyticsSession.objects.count(), AnalyticsHour.objects.count(), AnalyticsDay.objects.count()
    out("rollup tables", f"{sessions:,} visit rows, {hours:,} hour rows, {days:,} day rows", "")

    steady = timed(lambda: analytics_roll(now=timezone.now()), repeat=args.repeat)
    out("steady roll (the beat's: days touched since the last roll, today always)",
        f"median {steady['median_ms']:,.0f} ms, max {steady['max_ms']:,.0f} ms", f"load {load_average()}")
    figures["steady_roll"] = steady
    past = now.date() - timedelta(days=args.days // 2)
    one_day = timed(lambda: analytics_day_roll(day=past), repeat=args.repeat)
    out(f"one past day recounted ({past})", f"median {one_day['median_ms']:,.0f} ms", f"load {load_average()}")
    figures["day_roll"] = one_day
    whole = timed(lambda: rollup_refresh(now=timezone.now()), repeat=args.repeat)
    out("whole beat roll (`rollup_refresh`: snapshot, minutes, analytics)",
        f"median {whole['median_ms']:,.0f} ms, max {whole['max_ms']:,.0f} ms", f"load {load_average()}")
    figures["rollup_refresh"] = whole

    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    rollup_refresh(now=timezone.now())  # fresh: the pages below read, never roll
    first = now.date() - timedelta(days=args.days - 1)
    span = f"range=custom&start={first}&end={now.date()}"
    some_user = AnalyticsSession.objects.order_by("-started_at").values_list("user_id", flat=True).first() or ""
    pages = [
        ("analytics, today", "/dashboard/analytics/?range=today"),
        ("analytics, 7 days", "/dashboard/analytics/?range=7d"),
        ("analytics, 30 days", "/dashboard/analytics/?range=30d"),
        (f"analytics, all {args.days} days", f"/dashboard/analytics/?{span}"),
        ("analytics CSV, top pages, 30 days", "/dashboard/analytics/?range=30d&format=csv&table=pages"),
        (f"analytics CSV, entry pages, {args.days} days", f"/dashboard/analytics/?{span}&format=csv&table=entry_pages"),
        ("analytics CSV, visitors, 30 days", "/dashboard/analytics/?range=30d&format=csv&table=visitors"),
        ("visitor list, first page", "/dashboard/visitors/"),
        ("visitor search (part of an id)", f"/dashboard/visitors/?q={some_user[1:5]}"),
        ("visitor profile", f"/dashboard/visitors/?user_id={some_user}"),
        ("delivery report, 30 days", "/dashboard/ads/report/?range=30d"),
        (f"delivery report, {args.days} days", f"/dashboard/ads/report/?{span}"),
        ("delivery report CSV, per campaign and day, 30 days", "/dashboard/ads/report/?range=30d&format=csv&table=days"),
        ("overview data (`overview.json`, last day)", "/dashboard/overview.json?window=day"),
    ]
    if args.compare:
        from adsite.dashboard.analytics import period_parse

        periods = [("7 days", period_parse(range_="7d")), ("30 days", period_parse(range_="30d")),
                   (f"{args.days} days", period_parse(range_="custom", start=str(first), end=str(now.date())))]
        figures["compare"] = reads_compare(periods=periods, rounds=args.compare)
        for row in figures["compare"]:
            out(f"analytics report, {row['range']}: day sums / visit rows (interleaved)",
                f"{row['day sums']:,.0f} ms / {row['visit rows']:,.0f} ms (median of {row['rounds']})",
                f"load {row['load']}")
    figures["pages"] = {}
    for name, url in pages:
        status: list[int] = []
        size: list[int] = []

        def get(url: str = url, status: list[int] = status, size: list[int] = size) -> None:
            response = client.get(url)
            status.append(response.status_code)
            size.append(len(response.content))

        t = timed(get, repeat=args.repeat)
        figures["pages"][name] = {**t, "status": status[-1], "bytes": size[-1]}
        out(name, f"median {t['median_ms']:,.0f} ms, max {t['max_ms']:,.0f} ms",
            f"status {status[-1]}, {size[-1]:,} bytes; load {load_average()}")
    figures["load_after"] = load_average()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
