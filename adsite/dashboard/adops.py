"""Ad-ops delivery reports: what Revive's or Kevel's delivery reports show, from this site's own
counters.

- Per campaign and per day: served and viewable impressions, clicks, CTR (the dashboard's one
  definition, clicks / served impressions), eCPM (spend per thousand served impressions), spend (the
  site's revenue: no revenue share is configured). From ``AdsDay``: the ads ledger's running totals
  recorded at each roll, so a day is exact whichever process served it.
- Pacing: spend per day against the target (the daily budgets of the paid campaigns that ran).
- Fill rate per placement: the share of the placements asked for that a paid campaign filled (house
  ads and the site's own ad fill the rest), from the metrics snapshots of the last hour or day.
- Invalid traffic by reason: the ad-integrity counters (``adsite.ads.selectors.
  invalid_traffic_by_campaign``): refused impressions and clicks, never billed.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from django.utils import timezone

from adsite.ads.selectors import invalid_traffic_by_campaign
from adsite.dashboard import series
from adsite.dashboard.analytics import Period
from adsite.dashboard.models import AdsDay

logger = logging.getLogger(__name__)

# rows of the per-campaign-and-day table shown on the page (all of them in its CSV)
DAYS_SHOWN = 200

_KEYS = {
    "ads_campaign_served": "served",
    "ads_campaign_viewable": "viewable",
    "ads_campaign_clicks": "clicks",
    "ads_spend_total": "spend",
}


def ads_days_record(*, values: dict[str, float], now: datetime) -> int:
    """Keep today's running totals per campaign (upsert): the rollup calls it with each snapshot."""
    per: dict[str, dict[str, float]] = {}
    for key, value in values.items():
        name, labels = series.key_parse(key)
        if name in _KEYS and "campaign" in labels:
            per.setdefault(labels["campaign"], {})[_KEYS[name]] = value
    if not per:
        return 0
    day = now.date()
    # one upsert for every campaign (an update_or_create each was 41 round trips and a second of the
    # beat's roll on a busy PostgreSQL)
    AdsDay.objects.bulk_create(
        [
            AdsDay(
                day=day,
                campaign=campaign,
                served=int(v.get("served", 0)),
                viewable=int(v.get("viewable", 0)),
                clicks=int(v.get("clicks", 0)),
                spend=float(v.get("spend", 0.0)),
            )
            for campaign, v in per.items()
        ],
        update_conflicts=True,
        unique_fields=["day", "campaign"],
        update_fields=["served", "viewable", "clicks", "spend"],
    )
    return len(per)


def _ctr(clicks: float, served: float) -> float | None:
    return clicks / served if served else None


def campaign_days(*, period: Period) -> list[dict[str, Any]]:
    """One row per campaign and day of the period with delivery (that day's totals minus the last
    recorded totals before it)."""
    from adsite.ads import selectors as ads_selectors

    rows = list(
        AdsDay.objects.filter(day__lt=period.end, day__gte=period.start - timedelta(days=400))
        .order_by("campaign", "day")
        .values("campaign", "day", "served", "viewable", "clicks", "spend")
    )
    names = ads_selectors.campaign_names()
    out = []
    previous: dict[str, dict[str, Any]] = {}
    for row in rows:
        before = previous.get(row["campaign"])
        previous[row["campaign"]] = row
        if row["day"] < period.start:
            continue
        delta = {}
        for key in ("served", "viewable", "clicks", "spend"):
            now_v, old_v = row[key], (before or {}).get(key, 0)
            delta[key] = now_v - old_v if now_v >= old_v else now_v  # a cleared ledger starts again
        if not any(delta.values()):
            continue
        campaign = row["campaign"]
        out.append(
            {
                "day": row["day"],
                "campaign_id": campaign,
                "campaign": names.get(int(campaign), campaign) if campaign.isdigit() else campaign,
                **delta,
                "viewable_rate": delta["viewable"] / delta["served"] if delta["served"] else None,
                "ctr": _ctr(delta["clicks"], delta["served"]),
                "ecpm": 1000 * delta["spend"] / delta["served"] if delta["served"] else None,
            }
        )
    out.sort(key=lambda r: (r["day"], -r["served"]), reverse=False)
    return out


def campaign_totals(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The period's totals per campaign (from ``campaign_days``), biggest first."""
    totals: dict[str, dict[str, Any]] = {}
    for row in days:
        t = totals.setdefault(
            row["campaign_id"],
            {"campaign_id": row["campaign_id"], "campaign": row["campaign"], "served": 0, "viewable": 0, "clicks": 0, "spend": 0.0, "days": 0},
        )
        for key in ("served", "viewable", "clicks", "spend"):
            t[key] += row[key]
        t["days"] += 1
    for t in totals.values():
        t["viewable_rate"] = t["viewable"] / t["served"] if t["served"] else None
        t["ctr"] = _ctr(t["clicks"], t["served"])
        t["ecpm"] = 1000 * t["spend"] / t["served"] if t["served"] else None
    return sorted(totals.values(), key=lambda t: (-t["served"], t["campaign"]))


def pacing_series(*, period: Period, days: list[dict[str, Any]], campaign_id: str = "") -> dict[str, Any]:
    """Spend per day against the target: one campaign's daily budget (``campaign_id``), or the summed
    daily budgets of the paid campaigns that delivered in the period (house campaigns have none)."""
    from adsite.ads.selectors import campaign_delivery_list

    paid = {str(c.id): c for c in campaign_delivery_list() if c.tier != "house"}
    if campaign_id in paid:
        chosen = {campaign_id}
    else:
        campaign_id = ""
        chosen = {r["campaign_id"] for r in days if r["campaign_id"] in paid}
    target = round(sum(float(paid[c].daily_budget) for c in chosen), 2)
    per_day: dict[date, float] = {}
    for r in days:  # one pass: a day's bar summed per day, not the rows scanned again for each day
        if r["campaign_id"] in chosen:
            per_day[r["day"]] = per_day.get(r["day"], 0.0) + r["spend"]
    labels, spend = [], []
    for i in range(period.days):
        day = period.start + timedelta(days=i)
        labels.append(day.strftime("%b %d"))
        spend.append(round(per_day.get(day, 0.0), 2))
    spent = sum(spend)
    return {
        "labels": labels,
        "datasets": [
            {"label": "Spend", "data": spend, "type": "bar"},
            {"label": "Target: daily budget", "data": [target] * len(labels), "borderDash": [6, 4]},
        ],
        "target": target,
        "campaign": campaign_id,
        "campaigns": sorted(((c, str(paid[c])) for c in {r["campaign_id"] for r in days} if c in paid), key=lambda kv: kv[1]),
        "share": spent / (target * period.days) if target else None,
    }


def placement_fill(*, window: str = "day", now: datetime | None = None) -> list[dict[str, Any]]:
    """Per placement: asked for, filled by a paid campaign (sponsorship or standard), by a house
    campaign, by the site's own ad; fill rate = paid / asked. From the snapshots of the window."""
    from adsite.dashboard.selectors.windows import window_deltas

    deltas = window_deltas(window=window, now=now).deltas
    per: dict[str, dict[str, float]] = {}
    for key, value in deltas.items():
        name, labels = series.key_parse(key)
        if name == "ads_placement_filled_total" and value > 0:
            per.setdefault(labels.get("placement", ""), {})[labels.get("tier", "")] = value
    rows = []
    for placement, tiers in sorted(per.items()):
        asked = sum(tiers.values())
        paid = tiers.get("sponsorship", 0) + tiers.get("standard", 0)
        rows.append(
            {
                "placement": placement,
                "asked": int(asked),
                "paid": int(paid),
                "house": int(tiers.get("house", 0)),
                "builtin": int(tiers.get("builtin", 0)),
                "fill_rate": paid / asked if asked else None,
            }
        )
    return rows


def invalid_traffic(*, period: Period) -> dict[str, Any]:
    """Refused impressions and clicks by reason over the period, where the ads app counts them."""
    since = datetime.combine(period.start, datetime.min.time(), tzinfo=timezone.get_current_timezone()).timestamp()
    try:
        by_campaign = invalid_traffic_by_campaign(since=since)
    except Exception as exc:  # the ledger being unreachable: say so, do not show zeros
        logger.warning("dashboard.invalid_traffic_unavailable", exc_info=True)
        return {"rows": [], "error": f"{type(exc).__name__}: {exc}"}
    reasons: dict[str, dict[str, int]] = {}
    for counts in by_campaign.values():
        for kind, values in (("impressions", counts.impressions), ("clicks", counts.clicks)):
            for reason, n in values.items():
                reasons.setdefault(reason, {"impressions": 0, "clicks": 0})[kind] += int(n)
    rows = [
        {"reason": r, **v}
        for r, v in sorted(reasons.items(), key=lambda kv: -(kv[1]["impressions"] + kv[1]["clicks"]))
        if v["impressions"] or v["clicks"]
    ]
    return {"rows": rows, "error": ""}


def chosen_on_device(*, period: Period) -> dict[str, Any]:
    """Impressions chosen on visitors' devices (edge mode) per creative over the period, as the ads app
    reports them: a creative chosen fewer than ``min_audience`` times shows no counts."""
    from adsite.ads.conf import ads_setting
    from adsite.ads.selectors import campaign_names, edge_delivery

    since = datetime.combine(period.start, datetime.min.time(), tzinfo=timezone.get_current_timezone()).timestamp()
    try:
        delivered = edge_delivery(since=since)
    except Exception as exc:  # the ledger being unreachable: say so, do not show zeros
        logger.warning("dashboard.edge_delivery_unavailable", exc_info=True)
        return {"rows": [], "error": f"{type(exc).__name__}: {exc}", "min_audience": 0}
    names = campaign_names()
    rows = [
        {
            "creative_id": d.creative_id, "campaign_id": d.campaign_id,
            "campaign": names.get(d.campaign_id, str(d.campaign_id)), "reported": d.reported,
            "served": d.served, "viewable": d.viewable, "clicks": d.clicks,
            "viewable_rate": (d.viewable or 0) / d.served if d.served else None,
            "ctr": _ctr(d.clicks or 0, d.served or 0) if d.reported else None,
        }
        for d in sorted(delivered, key=lambda d: (-(d.served or 0), d.creative_id))
    ]
    return {"rows": rows, "error": "", "min_audience": int(ads_setting("EDGE_MIN_AUDIENCE"))}


def adops_report(
    *, period: Period, window: str = "day", now: datetime | None = None, campaign_id: str = ""
) -> dict[str, Any]:
    days = campaign_days(period=period)
    totals = campaign_totals(days)
    served = sum(t["served"] for t in totals)
    clicks = sum(t["clicks"] for t in totals)
    spend = sum(t["spend"] for t in totals)
    viewable = sum(t["viewable"] for t in totals)
    newest_first = sorted(days, key=lambda r: (r["day"], -r["served"]), reverse=True)
    return {
        "period": period,
        "days": newest_first,
        # the page shows the newest rows; the CSV has them all (six months of 40 campaigns is 7,000
        # rows: a 1.8 MB page that took seconds to render)
        "days_shown": newest_first[:DAYS_SHOWN],
        "campaigns": totals,
        "summary": {
            "served": served,
            "viewable": viewable,
            "clicks": clicks,
            "spend": spend,
            "viewable_rate": viewable / served if served else None,
            "ctr": _ctr(clicks, served),
            "ecpm": 1000 * spend / served if served else None,
        },
        "pacing": pacing_series(period=period, days=days, campaign_id=campaign_id),
        "fill": placement_fill(window=window, now=now),
        "invalid": invalid_traffic(period=period),
        "edge": chosen_on_device(period=period),
        "first_day": AdsDay.objects.order_by("day").values_list("day", flat=True).first(),
    }


def recorded_since() -> date | None:
    return AdsDay.objects.order_by("day").values_list("day", flat=True).first()
