"""Reads of the ads app for staff (the dashboard): campaigns and creatives with their delivery.

Promises: every function here is bounded (two or three queries, however many campaigns, plus one
ledger read), returns frozen dataclasses or plain dicts (no ORM row leaves except through the
``*_get`` functions that forms need), and writes nothing. Money is reported in the currency unit
(float), converted from the ledger's integer micros only here, for display.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from adsite.ads.accounting import LedgerUnavailable, Snapshot, ledger
from adsite.ads.catalog import MICROS, to_micros
from adsite.ads.conf import ads_setting
from adsite.ads.models import Campaign, Creative, DecisionExplanation

# pacing states (what the dashboard shows next to a campaign)
PACING_OFF = "off"
PACING_ON_PACE = "on pace"
PACING_AHEAD = "held back (ahead of pace)"
PACING_DAILY_SPENT = "daily budget spent"
PACING_BUDGET_SPENT = "budget spent"
PACING_PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class CreativeDelivery:
    id: int
    campaign_id: int
    name: str
    kind: str
    size: str
    active: bool
    headline: str
    body: str
    cta: str
    image_url: str
    html: str
    landing_url: str
    served: int
    viewable: int
    clicks: int

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.served if self.served else None


@dataclass(frozen=True, slots=True)
class CampaignDelivery:
    id: int
    name: str
    advertiser_id: int
    advertiser: str
    status: str
    tier: str
    pricing: str
    bid: float
    daily_budget: float
    total_budget: float
    spend_total: float
    spend_today: float
    served: int
    viewable: int
    clicks: int
    pacing: str
    creatives: tuple[CreativeDelivery, ...]
    # False while the ledger (Redis in services mode) cannot be read: the counters above are then zeros
    counters_available: bool = True

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.served if self.served else None

    @property
    def budget_used(self) -> float | None:
        return self.spend_total / self.total_budget if self.total_budget else None


def pacing_state(
    *, status: str, tier: str, daily_budget_micros: int, total_budget_micros: int, spend_total: int, spend_today: int,
    now: float,
) -> str:
    """The same rule ``ads_select`` applies (even spread over the UTC day plus ``PACING_SLACK``)."""
    if status != Campaign.Status.ACTIVE:
        return PACING_PAUSED
    if spend_total >= total_budget_micros:
        return PACING_BUDGET_SPENT
    if spend_today >= daily_budget_micros:
        return PACING_DAILY_SPENT
    if not ads_setting("PACING") or tier == Campaign.Tier.HOUSE or daily_budget_micros <= 0:
        return PACING_OFF
    elapsed = (now % 86400) / 86400
    allowed = daily_budget_micros * min(1.0, elapsed + float(ads_setting("PACING_SLACK")))
    return PACING_ON_PACE if spend_today < allowed else PACING_AHEAD


def _creative_delivery(row: Creative, served: int, clicks: int, viewable: int) -> CreativeDelivery:
    return CreativeDelivery(
        id=row.id, campaign_id=row.campaign_id, name=row.name, kind=row.kind, size=row.size, active=row.active,
        headline=row.headline, body=row.body, cta=row.cta, image_url=row.image.url if row.image else "",
        html=row.html if row.kind == Creative.Kind.HTML else "", landing_url=row.landing_url,
        served=served, viewable=viewable, clicks=clicks,
    )


def campaign_delivery_list(*, campaign_id: int | None = None, now: float | None = None) -> list[CampaignDelivery]:
    """Every campaign (or one) with its creatives and ledger counters: two queries and one ledger read."""
    now = time.time() if now is None else now
    campaigns = list(Campaign.objects.select_related("advertiser").order_by("advertiser__name", "name", "id"))
    creatives_query = Creative.objects.order_by("campaign_id", "name", "id")
    if campaign_id is not None:
        campaigns = [c for c in campaigns if c.id == campaign_id]
        creatives_query = creatives_query.filter(campaign_id=campaign_id)
    creatives = list(creatives_query)
    store = ledger()
    available = True
    try:
        snap = store.snapshot(
            campaign_ids=[c.id for c in campaigns], creative_ids=[c.id for c in creatives], user_id="", now=now
        )
        # the Snapshot carries no viewable count: one small read per creative (see ads_requests.md)
        viewable = {c.id: store.creative_stats(creative_id=c.id).viewable for c in creatives}
    except LedgerUnavailable:  # the campaigns are still listed; their counters say they are unknown
        available = False
        snap, viewable = Snapshot.empty(), {c.id: 0 for c in creatives}
    by_campaign: dict[int, list[CreativeDelivery]] = {}
    for row in creatives:
        by_campaign.setdefault(row.campaign_id, []).append(
            _creative_delivery(row, snap.impressions.get(row.id, 0), snap.clicks.get(row.id, 0), viewable[row.id])
        )
    out = []
    for row in campaigns:
        items = tuple(by_campaign.get(row.id, ()))
        daily, total = to_micros(row.daily_budget), to_micros(row.total_budget)
        spent, today = snap.spend_total.get(row.id, 0), snap.spend_today.get(row.id, 0)
        out.append(
            CampaignDelivery(
                id=row.id, name=row.name, advertiser_id=row.advertiser_id, advertiser=row.advertiser.name,
                status=row.status, tier=row.tier, pricing=row.pricing, bid=float(row.bid),
                daily_budget=daily / MICROS, total_budget=total / MICROS,
                spend_total=spent / MICROS, spend_today=today / MICROS,
                served=sum(c.served for c in items), viewable=sum(c.viewable for c in items),
                clicks=sum(c.clicks for c in items),
                pacing=pacing_state(
                    status=row.status, tier=row.tier, daily_budget_micros=daily, total_budget_micros=total,
                    spend_total=spent, spend_today=today, now=now,
                ),
                creatives=items,
                counters_available=available,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class RepeatWearOut:
    """One repeat bucket of the visitors' impressions (a 1st, 2nd, 3rd, later one of a campaign today)."""

    label: str
    clicks: int
    expected_clicks: float  # what the click model expected of these impressions before wear-out
    factor: float  # the wear-out decisions apply (``scoring.wear_out_factors``; 1 for a first impression)


def repeat_wear_out(*, now: float | None = None) -> list[RepeatWearOut] | None:
    """The wear-out of repeated ads as the ledger's repeat statistics teach it, over every creative (one
    ledger read); None when the ledger cannot be reached."""
    from adsite.ads.scoring import EXPOSURE_UNIT, Knobs, wear_out_factors

    now = time.time() if now is None else now
    creatives = list(Creative.objects.values_list("id", flat=True))
    try:
        snap = ledger().snapshot(campaign_ids=[], creative_ids=creatives, user_id="", now=now)
    except LedgerUnavailable:
        return None
    factors = wear_out_factors(snap, Knobs.read())

    def label(b: int) -> str:
        n = b + 1
        ordinal = {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")
        return ordinal if b < len(factors) - 1 else f"{ordinal} and later"

    return [
        RepeatWearOut(label(b), snap.repeat_clicks.get(b, 0), snap.repeat_expected.get(b, 0) / EXPOSURE_UNIT, factor)
        for b, factor in enumerate(factors)
    ]


def ads_delivery_counters(*, now: float | None = None) -> dict[str, float]:
    """Cumulative per-campaign figures in Prometheus-like keys (``ads_spend_total{campaign=7}``), for
    the dashboard's snapshots: ``ads_campaign_served``, ``_viewable``, ``_clicks``, ``ads_spend_total``
    (currency units) and ``ads_budget`` (total budget). The ledger is shared by all processes, so these
    are global values, not per-process ones."""
    values: dict[str, float] = {}
    for c in campaign_delivery_list(now=now):
        if not c.counters_available:  # unknown, not zero: record nothing rather than a false drop
            return {}
        label = f"{{campaign={c.id}}}"
        values[f"ads_campaign_served{label}"] = float(c.served)
        values[f"ads_campaign_viewable{label}"] = float(c.viewable)
        values[f"ads_campaign_clicks{label}"] = float(c.clicks)
        values[f"ads_spend_total{label}"] = round(c.spend_total, 6)
        values[f"ads_budget{label}"] = round(c.total_budget, 6)
    return values


def campaign_names() -> dict[int, str]:
    """Campaign id -> "Advertiser: name" (one query)."""
    return {
        pk: f"{advertiser}: {name}"
        for pk, name, advertiser in Campaign.objects.values_list("id", "name", "advertiser__name")
    }


def campaign_get(*, campaign_id: int) -> Campaign | None:
    return Campaign.objects.select_related("advertiser").filter(id=campaign_id).first()


def creative_get(*, creative_id: int) -> Creative | None:
    return Creative.objects.select_related("campaign__advertiser").filter(id=creative_id).first()


def decision_explanations_recent(*, user_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The kept (sampled or explained) decisions of one visitor, newest first (one indexed query)."""
    rows = (
        DecisionExplanation.objects.filter(user_id=user_id)
        .order_by("-created_at", "-id")
        .values("decision_id", "created_at", "explanation")[:limit]
    )
    return [dict(row) for row in rows]


# ---- the advertiser report (what is invoiced) and invalid traffic ------------------------------------

INVALID_REASONS = ("bot", "unknown_serve", "wrong_visitor", "replay", "expired", "rate")
_METRICS = {"served": "impressions_served", "viewable": "impressions_viewable", "imp_billed": "impressions_billed",
            "clk_billed": "clicks_billed"}


@dataclass(frozen=True, slots=True)
class InvalidTraffic:
    """Refused impressions and clicks of one campaign, by reason (``adsite.ads.integrity``)."""

    impressions: dict[str, int]
    clicks: dict[str, int]


def _report_counters(since: float | None) -> dict[int, dict[str, int]]:
    """campaign id -> metric -> count, from the ledger's hourly report counters (raises LedgerUnavailable)."""
    out: dict[int, dict[str, int]] = {}
    for name, value in ledger().report_read(since=since, now=time.time()).items():
        campaign, _, metric = name.partition(":")
        try:
            out.setdefault(int(campaign), {})[metric] = value
        except ValueError:
            continue
    return out


def invalid_traffic_by_campaign(*, since: float | None = None) -> dict[int, InvalidTraffic]:
    """Refused impressions and clicks by reason, per campaign id, from ``since`` (epoch seconds; the
    report keeps hours, so counting starts at the start of ``since``'s hour; None: all that is kept).
    Campaign 0 holds refusals that name no campaign (a bot's page, a forged token). Every reason is
    present (0 when none). Raises ``LedgerUnavailable`` while the ledger cannot be read."""
    out = {}
    for campaign_id, metrics in _report_counters(since).items():
        out[campaign_id] = InvalidTraffic(
            impressions={r: metrics.get(f"ivi.{r}", 0) for r in INVALID_REASONS},
            clicks={r: metrics.get(f"ivc.{r}", 0) for r in INVALID_REASONS},
        )
    return out


def _money(micros: int | Any) -> str:
    from decimal import Decimal

    return str((Decimal(micros) / MICROS).quantize(Decimal("0.000001")))


def ads_report(*, since: float | None = None) -> dict[str, Any]:
    """The numbers an advertiser is invoiced from, per campaign and in total (``manage.py ads_report``):
    ``{"campaigns": [{"id", "name", "impressions_served", "impressions_viewable", "impressions_billed",
    "impressions_invalid": {reason: n}, "clicks_billed", "clicks_invalid": {reason: n}, "spend",
    "budget"}], "totals": {the same counters summed}, "chosen_on_device": [{"creative_id", "campaign_id",
    "reported", "served", "viewable", "clicks"}], "chosen_on_device_min_audience": n}`` (edge mode's
    per-creative counts, None below the minimum audience); money in the currency's units as decimal
    strings. The totals also hold invalid traffic that names no campaign (a bot's page, a forged
    token). Raises ``LedgerUnavailable`` while the ledger cannot be read."""
    from decimal import Decimal

    counters = _report_counters(since)
    campaigns = []
    totals: dict[str, Any] = {
        "impressions_served": 0, "impressions_viewable": 0, "impressions_billed": 0,
        "impressions_invalid": dict.fromkeys(INVALID_REASONS, 0), "clicks_billed": 0,
        "clicks_invalid": dict.fromkeys(INVALID_REASONS, 0),
    }
    spend_total = 0
    budget_total = Decimal(0)

    def add(metrics: dict[str, int], row: dict[str, Any]) -> None:
        for metric, key in _METRICS.items():
            row[key] = metrics.get(metric, 0)
            totals[key] += row[key]
        for kind, key in (("ivi", "impressions_invalid"), ("ivc", "clicks_invalid")):
            row[key] = {r: metrics.get(f"{kind}.{r}", 0) for r in INVALID_REASONS}
            for reason, n in row[key].items():
                totals[key][reason] += n

    for campaign_id, name, budget in Campaign.objects.order_by("id").values_list("id", "name", "total_budget"):
        metrics = counters.get(campaign_id, {})
        row: dict[str, Any] = {"id": campaign_id, "name": name}
        add(metrics, row)
        spend = metrics.get("spend", 0)
        spend_total += spend
        budget_total += budget
        row["spend"] = _money(spend)
        row["budget"] = _money(to_micros(budget))
        campaigns.append(row)
    add(counters.get(0, {}), {})  # refusals that name no campaign count in the totals only
    totals["spend"] = _money(spend_total)
    totals["budget"] = _money(to_micros(budget_total))
    # the impressions chosen on visitors' devices are in the counters above (billed alike); per creative
    # they are reported only past the minimum audience
    chosen_on_device = [
        {"creative_id": row.creative_id, "campaign_id": row.campaign_id, "reported": row.reported,
         "served": row.served, "viewable": row.viewable, "clicks": row.clicks}
        for row in edge_delivery(since=since)
    ]
    return {"campaigns": campaigns, "totals": totals, "chosen_on_device": chosen_on_device,
            "chosen_on_device_min_audience": int(ads_setting("EDGE_MIN_AUDIENCE"))}


@dataclass(frozen=True, slots=True)
class EdgeCreativeDelivery:
    """A creative's impressions chosen on visitors' devices (edge mode), as far as they are reported.

    ``reported`` is False while the creative has been chosen fewer than ``min_audience`` times: then
    ``served``, ``viewable`` and ``clicks`` are None (the report says "fewer than N"), so that no report
    describes what a handful of visitors did."""

    creative_id: int
    campaign_id: int
    reported: bool
    min_audience: int
    served: int | None
    viewable: int | None
    clicks: int | None


def edge_delivery(*, since: float | None = None, min_audience: int | None = None) -> list[EdgeCreativeDelivery]:
    """Per creative, the edge-chosen impressions' aggregate counters (``adsite.ads.edge``), from ``since``
    (its hour; None: all that is kept), hidden below ``ADS["EDGE_MIN_AUDIENCE"]`` served impressions.
    Raises ``LedgerUnavailable`` while the ledger cannot be read."""
    threshold = int(ads_setting("EDGE_MIN_AUDIENCE") if min_audience is None else min_audience)
    counts: dict[tuple[int, int], dict[str, int]] = {}
    for campaign_id, metrics in _report_counters(since).items():
        for metric, value in metrics.items():
            kind, _, rest = metric.partition(".")
            creative, _, name = rest.partition(".")
            if kind != "edge" or not creative.isdigit():
                continue
            counts.setdefault((campaign_id, int(creative)), {})[name] = value
    out = []
    for (campaign_id, creative_id), metrics in sorted(counts.items(), key=lambda item: item[0][1]):
        served = metrics.get("served", 0)
        shown = served >= threshold
        out.append(EdgeCreativeDelivery(
            creative_id=creative_id, campaign_id=campaign_id, reported=shown, min_audience=threshold,
            served=served if shown else None,
            viewable=metrics.get("viewable", 0) if shown else None,
            clicks=metrics.get("clicks", 0) if shown else None,
        ))
    return out
