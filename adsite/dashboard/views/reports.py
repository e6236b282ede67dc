"""Analytics and the ads delivery report, as pages and CSV."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from adsite.dashboard.access import staff_required
from adsite.dashboard.rollup import rollup_refresh_if_stale
from adsite.dashboard.views.overview import _window


def _period(request: HttpRequest) -> Any:
    from adsite.dashboard.analytics import period_parse

    return period_parse(
        range_=request.GET.get("range", "7d"), start=request.GET.get("start", ""), end=request.GET.get("end", "")
    )


def _csv_query(period: Any) -> str:
    """The query string of this period's CSV links (``&table=<name>`` is added per table)."""
    from urllib.parse import urlencode

    return urlencode({"format": "csv", "range": "custom", "start": period.start, "end": period.last})


def _csv(filename: str, header: list[str], rows: list[list[Any]]) -> HttpResponse:
    import csv

    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


def _csv_safe(value: Any) -> Any:
    # a cell a spreadsheet would run as a formula (=, +, -, @ first) is written as text
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@require_GET
@staff_required
def analytics(request: HttpRequest) -> HttpResponse:
    from adsite.dashboard import analytics as site_analytics

    rollup_refresh_if_stale(page_view=True)
    period = _period(request)
    if request.GET.get("format") == "csv":
        table = request.GET.get("table", "")
        if table == "visitors":
            listed = site_analytics.visitors_list(period=period, limit=100_000)
            header = ["visitor", "visits", "pageviews", "engaged_seconds", "first_seen", "last_seen"]
            data = [
                [r["user_id"], r["visits"], r["pageviews"], round(r["engaged"] or 0, 1),
                 r["first_seen"].isoformat(), r["last_seen"].isoformat()]
                for r in listed["rows"]
            ]
        elif table == "daily":
            chart = site_analytics.analytics_report(period=period)["chart"]
            header = ["bucket", *[d["label"] for d in chart["datasets"]]]
            data = [[label, *[d["data"][i] for d in chart["datasets"]]] for i, label in enumerate(chart["labels"])]
        elif table in site_analytics.TABLES:
            rows = site_analytics.analytics_tables(period=period, limit=10_000, only=(table,))[table]
            header = list(rows[0].keys()) if rows else ["key"]
            data = [list(r.values()) for r in rows]
        else:
            raise Http404("no such table")
        return _csv(
            f"analytics-{table}-{period.label.replace(' – ', '-to-')}.csv",
            header, [[_csv_safe(v) for v in row] for row in data],
        )
    report = site_analytics.analytics_report(period=period)
    return render(
        request,
        "dashboard/analytics.html",
        {
            "page": "analytics",
            "r": report,
            "period": period,
            "chart": report["chart"],
            "period_choices": site_analytics.PERIOD_CHOICES,
            "tiles": site_analytics.TILES,
            "tables": site_analytics.TABLE_TITLES,
            "csv": _csv_query(period),
        },
    )


@require_GET
@staff_required
def ads_report(request: HttpRequest) -> HttpResponse:
    from adsite.dashboard import adops
    from adsite.dashboard.analytics import PERIOD_CHOICES
    from adsite.dashboard.templatetags.dashboard_format import CTR_DEFINITION

    rollup_refresh_if_stale(page_view=True)
    period = _period(request)
    report = adops.adops_report(
        period=period,
        window=_window(request) if request.GET.get("window") else "day",
        campaign_id=request.GET.get("campaign", "")[:32],
    )
    if request.GET.get("format") == "csv":
        table = request.GET.get("table", "")
        if table == "days":
            header = ["day", "campaign_id", "campaign", "served", "viewable", "viewable_rate", "clicks",
                      f"ctr ({CTR_DEFINITION})", "ecpm", "spend"]
            data = [[r["day"].isoformat(), r["campaign_id"], r["campaign"], r["served"], r["viewable"],
                     r["viewable_rate"], r["clicks"], r["ctr"], r["ecpm"], round(r["spend"], 6)] for r in report["days"]]
        elif table == "campaigns":
            header = ["campaign_id", "campaign", "days", "served", "viewable", "viewable_rate", "clicks",
                      f"ctr ({CTR_DEFINITION})", "ecpm", "spend"]
            data = [[t["campaign_id"], t["campaign"], t["days"], t["served"], t["viewable"], t["viewable_rate"],
                     t["clicks"], t["ctr"], t["ecpm"], round(t["spend"], 6)] for t in report["campaigns"]]
        elif table == "fill":
            header = ["placement", "asked", "paid", "house", "builtin", "fill_rate"]
            data = [[f["placement"], f["asked"], f["paid"], f["house"], f["builtin"], f["fill_rate"]] for f in report["fill"]]
        elif table == "invalid":
            header = ["reason", "impressions", "clicks"]
            data = [[r["reason"], r["impressions"], r["clicks"]] for r in report["invalid"]["rows"]]
        elif table == "edge":
            header = ["creative_id", "campaign_id", "campaign", "reported", "served", "viewable", "clicks",
                      f"ctr ({CTR_DEFINITION})"]
            data = [[r["creative_id"], r["campaign_id"], r["campaign"], r["reported"], r["served"], r["viewable"],
                     r["clicks"], r["ctr"]] for r in report["edge"]["rows"]]
        else:
            raise Http404("no such table")
        return _csv(f"ads-{table}-{period.start}.csv", header, [[_csv_safe(v) for v in row] for row in data])
    return render(
        request,
        "dashboard/ads_report.html",
        {
            "page": "ads",
            "r": report,
            "period": period,
            "pacing": report["pacing"],
            "period_choices": PERIOD_CHOICES,
            "csv": _csv_query(period),
        },
    )
