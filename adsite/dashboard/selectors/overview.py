"""Reads behind the overview page: request, prediction, decision and event rates, latencies, breakers,
bot and quarantine shares, impressions, clicks and spend for the last hour or day.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from adsite.dashboard import series
from adsite.dashboard.selectors.windows import (
    BREAKER_NAMES,
    WINDOWS,
    latency_table,
    rate_series,
    traffic_totals,
    window_deltas,
)


def _served(deltas: dict[str, float]) -> float:
    return sum(series.series_by_label(deltas, "inference_served_total", "served_by").values())


def _http_requests(deltas: dict[str, float]) -> float:
    """HTTP requests answered (every route and status: ``adsite.ops.middleware``)."""
    return sum(series.series_by_label(deltas, "http_requests_total", "route").values())


def _requests_by_route(deltas: dict[str, float], seconds: float, limit: int = 8) -> list[dict[str, Any]]:
    routes = series.series_by_label(deltas, "http_requests_total", "route")
    errors = series.series_by_label(deltas, "http_requests_total", "route", status="5xx")
    busiest = sorted((r for r in routes if routes[r] > 0), key=lambda r: -routes[r])[:limit]
    rows = []
    for route in busiest:
        # server-side latency (``http_request_seconds``); None for windows recorded before it existed
        latency = series.histogram_quantiles(deltas, "http_request_seconds", (0.5, 0.99), route=route)
        rows.append(
            {
                "route": route,
                "count": int(routes[route]),
                "per_s": round(routes[route] / seconds, 3) if seconds > 0 else None,
                "errors_5xx": int(errors.get(route, 0)),
                **{
                    f"p{int(q * 100)}_ms": round(v * 1000, 2) if v is not None else None
                    for q, v in latency.items()
                },
            }
        )
    return rows


def _decisions(deltas: dict[str, float]) -> float:
    return sum(v for k, v in deltas.items() if series.key_parse(k)[0] == "ads_decisions_total")


def _impressions_served(deltas: dict[str, float]) -> float:
    """Placements filled with a campaign's creative (the site's built-in house ad is not counted)."""
    served = series.series_by_label(deltas, "ads_impressions_served_total", "tier")
    return sum(v for tier, v in served.items() if tier != "builtin")


def _has_impressions(deltas: dict[str, float]) -> bool:
    return any(series.key_parse(k)[0] == "ads_impressions_served_total" for k in deltas)


def _spend_rows(spend: dict[str, float], budget: dict[str, float], limit: int = 10) -> list[dict[str, Any]]:
    """The campaigns that spent, most first, named (one query); spend and budget are running totals."""
    spent = sorted((c for c in spend if spend[c] > 0), key=lambda c: -spend[c])[:limit]
    if not spent:
        return []
    from adsite.ads import selectors as ads_selectors
    from adsite.dashboard.templatetags.dashboard_format import budget as budget_text
    from adsite.dashboard.templatetags.dashboard_format import money_text

    names = ads_selectors.campaign_names()
    return [
        {
            "campaign": names.get(int(c), c) if c.isdigit() else c,
            "spend": money_text(round(spend[c], 2)),
            "budget": budget_text(round(budget[c], 2)) if c in budget else None,
        }
        for c in spent
    ]


def _received(deltas: dict[str, float]) -> float:
    return deltas.get("ledger:received", 0.0)


def overview_get(*, window: str = "hour", now: datetime | None = None) -> dict[str, Any]:
    """The overview's figures for the last hour or day, JSON-ready (see the module docstring of rollup)."""
    now = now or timezone.now()
    measured = window_deltas(window=window, now=now)
    start, points, deltas = measured.start, measured.points, measured.deltas
    seconds, latest = measured.seconds, measured.latest
    served = series.series_by_label(deltas, "inference_served_total", "served_by")
    predictions = sum(served.values())
    decisions = _decisions(deltas)
    fallbacks = series.series_by_label(deltas, "inference_fallbacks_total", "reason")
    breakers = {}
    if latest is not None:
        for model, value in series.series_by_label(latest[1], "inference_breaker_state", "model").items():
            breakers[model] = BREAKER_NAMES.get(int(value), str(value))
    traffic = traffic_totals(start, now)
    events = traffic.get("events", {})
    bots = traffic.get("bots", {})
    quarantined = traffic.get("quarantined", {})
    people = sum(events.values())
    impressions = events.get("ad_impression", 0)
    clicks = events.get("ad_click", 0)
    spend = series.series_by_label(latest[1], "ads_spend_total", "campaign") if latest else {}
    budget = series.series_by_label(latest[1], "ads_budget", "campaign") if latest else {}

    served_impressions = int(_impressions_served(deltas) if _has_impressions(deltas) else decisions)

    def per_s(value: float) -> float | None:
        return round(value / seconds, 3) if seconds > 0 else None

    return {
        "window": window if window in WINDOWS else "hour",
        "now": now.isoformat(),
        "measured_seconds": round(seconds, 1),
        "snapshot_at": latest[0].isoformat() if latest else None,
        # true HTTP requests (every route), not predictions + decisions; None before the first
        # snapshots that hold the counter
        "requests_per_s": (
            per_s(_http_requests(deltas))
            if any(k.startswith("http_requests_total{") for k in deltas)
            else None
        ),
        "requests_by_route": _requests_by_route(deltas, seconds),
        "predictions_per_s": per_s(predictions),
        "decisions_per_s": per_s(decisions),
        "events_per_s": per_s(_received(deltas)),
        "served_by": {k: int(v) for k, v in sorted(served.items()) if v > 0},
        "fallbacks": [
            {"reason": k, "count": int(v), "rate": f"{100 * v / predictions:.1f}%" if predictions else None}
            for k, v in sorted(fallbacks.items())
            if v > 0
        ],
        "prediction_latency": latency_table(deltas, "inference_predict_seconds", "model", stage="total"),
        "model_latency": latency_table(deltas, "inference_predict_seconds", "model", stage="model"),
        "decision_latency": latency_table(deltas, "ads_decision_seconds", "placement"),
        "breakers": breakers,
        "events_by_type": events,
        "bots_by_type": bots,
        "bot_share": round(sum(bots.values()) / (people + sum(bots.values())), 4) if people or bots else None,
        "quarantined_by_reason": quarantined,
        "impressions_served": served_impressions,
        "impressions_viewable": impressions,
        "clicks": clicks,
        # the dashboard's one CTR: clicks / served impressions (as on the ads pages and reports)
        "ctr": f"{100 * clicks / served_impressions:.2f}%" if served_impressions else None,
        "spend_vs_budget": _spend_rows(spend, budget),
        "chart": {
            "requests": rate_series(points, start, now, _http_requests),
            "events": rate_series(points, start, now, _received),
        },
    }
