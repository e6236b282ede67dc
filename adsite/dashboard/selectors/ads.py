"""Reads behind the ads pages: delivery series (served, viewable, clicks, spend), campaigns that sat
out, and one campaign's page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.utils import timezone

from adsite.ads.conf import ads_setting
from adsite.dashboard import series
from adsite.dashboard.models import MetricSnapshot
from adsite.dashboard.selectors.windows import (
    WINDOWS,
    snapshots_in,
)

ADS_SERIES = ("served", "viewable", "clicks", "spend")

_ADS_KEYS = {
    "ads_campaign_served": "served",
    "ads_campaign_viewable": "viewable",
    "ads_campaign_clicks": "clicks",
    "ads_spend_total": "spend",
}


def _ads_values(values: dict[str, float]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for key, value in values.items():
        name, labels = series.key_parse(key)
        if name in _ADS_KEYS and "campaign" in labels:
            out[(_ADS_KEYS[name], labels["campaign"])] = value
    return out


def ads_delivery_series(
    *, window: str = "hour", campaign_id: int | None = None, now: datetime | None = None, points: int = 30
) -> dict[str, Any]:
    """Served and viewable impressions, clicks and spend per time bucket (all campaigns summed, or one).

    The ads ledger's counters are global, so consecutive snapshots are differenced in time order
    whichever process took them (two queries: the window's snapshot index, then the picked rows).
    """
    now = now or timezone.now()
    start = now - WINDOWS.get(window, WINDOWS["hour"])
    index = list(
        MetricSnapshot.objects.filter(at__gte=start, at__lte=now)
        .order_by("at", "id")
        .values_list("id", "at")[:20_000]
    )
    step = max(1, len(index) // (points * 2))
    picks = index[::step]
    if index and picks[-1] != index[-1]:
        picks.append(index[-1])
    values = dict(MetricSnapshot.objects.filter(id__in=[pk for pk, _ in picks]).values_list("id", "values"))
    width = (now - start) / points
    out: dict[str, list[float | None]] = {name: [None] * points for name in ADS_SERIES}
    wanted = str(campaign_id) if campaign_id is not None else None
    previous: dict[tuple[str, str], float] | None = None
    for pk, at in picks:
        current = _ads_values(values.get(pk) or {})
        if previous is not None and current:
            slot = min(points - 1, max(0, int((at - start) / width)))
            for (name, campaign), value in current.items():
                if wanted is not None and campaign != wanted:
                    continue
                before = previous.get((name, campaign), 0.0)
                delta = value - before if value >= before else value  # a cleared ledger starts again
                out[name][slot] = (out[name][slot] or 0.0) + delta
        if current:
            previous = current
    return {
        "t": [(start + width * (i + 1)).isoformat() for i in range(points)],
        "series": {
            name: [round(v, 4) if v is not None else None for v in values_] for name, values_ in out.items()
        },
        "snapshots": len(picks),
    }


def ads_sat_out(*, window: str = "hour", now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Per campaign id, how many decisions it sat out in the window: capped, paced, out of budget
    (``ads_campaign_filtered_total``, a per-process counter: differenced per source, then summed)."""
    now = now or timezone.now()
    start = now - WINDOWS.get(window, WINDOWS["hour"])
    points = snapshots_in(start, now)
    deltas = series.deltas_sum(
        series.counter_deltas(rows[0][1], rows[-1][1]) for rows in points.values() if rows
    )
    out: dict[str, dict[str, int]] = {}
    for key, value in deltas.items():
        name, labels = series.key_parse(key)
        if name == "ads_campaign_filtered_total" and value > 0:
            out.setdefault(labels.get("campaign", ""), {})[labels.get("reason", "")] = int(value)
    return out


def pct(part: float, whole: float, digits: int = 2) -> str | None:
    return f"{100 * part / whole:.{digits}f}%" if whole else None


def ads_page(*, window: str = "hour", now: datetime | None = None) -> dict[str, Any]:
    """Advertisers with their campaigns (ledger totals, pacing, caps hit in the window) and the
    combined delivery chart."""
    from adsite.ads import selectors as ads_selectors

    campaigns = ads_selectors.campaign_delivery_list()
    sat_out = ads_sat_out(window=window, now=now)
    rows = []
    for c in campaigns:
        hits = sat_out.get(str(c.id), {})
        rows.append(
            {
                "c": c,
                "ctr": pct(c.clicks, c.served),
                "used": pct(c.spend_total, c.total_budget, 1),
                "capped": hits.get("capped", 0),
                "paced": hits.get("paced", 0),
                "out_of_budget": hits.get("out_of_budget", 0),
            }
        )
    advertisers: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        campaign = cast("ads_selectors.CampaignDelivery", row["c"])
        advertisers.setdefault(campaign.advertiser, []).append(row)
    totals: dict[str, Any] = {
        "served": sum(c.served for c in campaigns),
        "viewable": sum(c.viewable for c in campaigns),
        "clicks": sum(c.clicks for c in campaigns),
        "spend": round(sum(c.spend_total for c in campaigns), 2),
        "budget": round(sum(c.total_budget for c in campaigns if c.tier != "house"), 2),
        "active": sum(1 for c in campaigns if c.status == "active"),
        "campaigns": len(campaigns),
    }
    totals["ctr"] = f"{100 * totals['clicks'] / totals['served']:.2f}%" if totals["served"] else None
    return {
        "advertisers": sorted(advertisers.items()),
        "counters_unavailable": any(not c.counters_available for c in campaigns),
        "totals": totals,
        "delivery": ads_delivery_series(window=window, now=now),
        "wear_out": ads_selectors.repeat_wear_out(),
        "wear_out_on": bool(ads_setting("WEAR_OUT")),
    }


def ads_campaign_page(
    *, campaign_id: int, window: str = "hour", now: datetime | None = None
) -> dict[str, Any] | None:
    """One campaign: its creatives (with previews), delivery chart and the caps it hit."""
    from adsite.ads import selectors as ads_selectors

    found = ads_selectors.campaign_delivery_list(campaign_id=campaign_id)
    if not found:
        return None
    hits = ads_sat_out(window=window, now=now).get(str(campaign_id), {})
    campaign = found[0]
    return {
        "campaign": campaign,
        "counters_unavailable": not campaign.counters_available,
        "ctr": pct(campaign.clicks, campaign.served),
        "used": pct(campaign.spend_total, campaign.total_budget, 1),
        "today_used": pct(campaign.spend_today, campaign.daily_budget, 1),
        "creatives": [{"cr": cr, "ctr": pct(cr.clicks, cr.served)} for cr in campaign.creatives],
        "sat_out": hits,
        "delivery": ads_delivery_series(window=window, campaign_id=campaign_id, now=now),
    }
