"""Ads chosen on the visitor's device (edge mode): offers made from context only, a choice reported back.

An edge-mode visitor's interests never leave their browser, so the server cannot choose their ad. It
makes *offers* instead, and the browser chooses (``adsite/ads/static/ads/edge-ads.js``):

1. ``edge_offers``: for one page's placements, the creatives that may run, from the page's context only
   (its placements, its categories, the device class of the user agent): no visitor id, no cookie, no
   history. The same eligibility as ``ads_select`` (dates, device, hour, budgets left, pacing), minus
   what needs the visitor (frequency caps are counted on the device). Each offer carries what the
   browser needs to score it the way ``ads_select`` would (the campaign's interest weights and minimum
   score, its tier, pricing and bid, a Thompson sample of the creative's quality, its caps) and a
   signed offer token (creative, campaign, placement; valid ``EDGE_OFFER_MAX_AGE_S``). Nothing is
   reserved or counted: an offer is not an impression.
2. ``edge_serve``: the browser names the offers it chose. Each is reserved through the ledger exactly as
   a server-side decision's choice is (``impressions_reserve``: the atomic budget check, a CPM charge,
   the creative's served impression), without a visitor (no server-side caps: there is no visitor id),
   and answered with the usual signed click and impression links (origin ``edge``, bound to the
   truncated address and user agent like any visitor the site does not identify). From there the
   ``/i/<token>`` and ``/c/<token>`` paths bill and refuse exactly as for any other ad
   (``adsite.ads.services.billing``, ``adsite.ads.integrity``).

What the server learns: that some browser on this page's context was shown this creative (and, later,
that the impression was viewable or clicked): aggregate counts per creative, kept in the ledger's
hourly report counters (``edge.<creative>.served|viewable|clicks``), and reported only once a creative
has been chosen on devices ``EDGE_MIN_AUDIENCE`` times (``adsite.ads.selectors.edge_delivery``). It does
not learn the visitor's interests, profile or history, nor which other offers were turned down.
The interest lift of an edge impression is unknown to the server, so it counts in the creative's
quality statistics with exposure 1 (an average visitor's).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.core import signing

from adsite.ads.accounting import OK, Charge, LedgerUnavailable, ledger
from adsite.ads.catalog import TIER_RANK, Catalog, catalog_current
from adsite.ads.conf import ads_setting
from adsite.ads.decisions import Choice
from adsite.ads.delivery import choice_token, token_urls
from adsite.ads.eligibility import counters_filter, prefilter
from adsite.ads.integrity import BOT, IMPRESSION, UNKNOWN_SERVE, Visitor, invalid_record
from adsite.ads.scoring import Knobs, quality_posteriors
from adsite.ads.tokens import EDGE, OFFER_SALT
from adsite.platform import platform

logger = logging.getLogger(__name__)

# what the browser's choice can be refused for (besides the ledger's budget outcomes)
OFFER_INVALID = "invalid_offer"
OFFER_EXPIRED = "expired_offer"
OFFER_ENDED = "ended"
LEDGER_DOWN = "ledger_unavailable"


@dataclass(frozen=True, slots=True)
class EdgeOffer:
    """One creative the browser may choose for one placement, with what it needs to score it."""

    offer: str  # signed: creative, campaign, placement
    placement: str
    creative_id: int
    campaign_id: int
    advertiser_id: int
    advertiser: str
    tier_rank: int  # 0 sponsorship, 1 standard, 2 house: a better tier wins first
    pricing: str  # cpc | cpm
    bid_micros: int
    quality: float  # a Thompson sample of the creative's clicks per unit of exposure
    interests: tuple[tuple[str, float], ...]  # the campaign's interest weights ((): shown to everyone)
    interest_min_score: float
    cap_per_hour: int
    cap_per_day: int
    kind: str
    size: str
    headline: str
    body: str
    cta: str
    image_url: str
    html: str


@dataclass(frozen=True, slots=True)
class EdgeOffers:
    placements: tuple[tuple[str, str], ...]  # (name, size), in page order
    offers: tuple[EdgeOffer, ...]
    knobs: dict[str, float]  # the interest lift's constants (smoothing, power, max)
    interest_top: int


@dataclass(frozen=True, slots=True)
class EdgeServed:
    """The server's answer to one chosen offer: the links to show it with, or why it may not run."""

    placement: str
    creative_id: int | None
    outcome: str  # "ok", a ledger refusal (out_of_budget, daily_budget) or an offer problem
    click_url: str = ""
    impression_url: str = ""
    serve_id: str = ""


def _offer_token(*, creative_id: int, campaign_id: int, placement: str) -> str:
    return signing.dumps({"c": creative_id, "k": campaign_id, "p": placement}, salt=OFFER_SALT, compress=True)


def edge_offers(
    *,
    placements: Sequence[str],
    device: str = "other",
    now: float | None = None,
    rng: random.Random | None = None,
) -> EdgeOffers:
    """The creatives each placement may show, from context only (see the module docstring). A campaign
    is offered when ``ads_select`` would consider it for an anonymous visitor on this device and hour;
    the interest threshold and the caps are the browser's to apply. The ledger unreachable: no offer
    (the page keeps its house ads)."""
    now = time.time() if now is None else now
    rng = rng or platform().decision_rng
    knobs = Knobs.read()
    catalog: Catalog = catalog_current()
    sizes = tuple((name, catalog.placement_sizes.get(name, "")) for name in placements)
    hour = int(now // 3600) % 24
    live = [
        c for c in catalog.campaigns
        if prefilter(c, now=now, device=device, hour=hour, house_only=False) is None
    ]
    try:
        snap = ledger().snapshot(
            campaign_ids=[c.id for c in live], creative_ids=[cr.id for c in live for cr in c.creatives],
            user_id="", now=now,
        )
    except LedgerUnavailable:
        logger.warning("ads.ledger_unavailable at edge offers: house ads")
        live = []
    qualities = quality_posteriors(live, snap, knobs) if live else {}
    offers: list[EdgeOffer] = []
    for campaign in live:
        if counters_filter(campaign, snap, now, knobs) is not None:
            continue
        for creative in campaign.creatives:
            for name, size in sizes:
                if creative.size not in ("fluid", size):
                    continue
                offers.append(EdgeOffer(
                    offer=_offer_token(creative_id=creative.id, campaign_id=campaign.id, placement=name),
                    placement=name, creative_id=creative.id, campaign_id=campaign.id,
                    advertiser_id=campaign.advertiser_id, advertiser=campaign.advertiser,
                    tier_rank=TIER_RANK[campaign.tier], pricing=campaign.pricing, bid_micros=campaign.bid_micros,
                    quality=qualities[creative.id].sample(rng), interests=campaign.interests,
                    interest_min_score=campaign.interest_min_score,
                    cap_per_hour=campaign.cap_per_hour, cap_per_day=campaign.cap_per_day,
                    kind=creative.kind, size=creative.size, headline=creative.headline, body=creative.body,
                    cta=creative.cta, image_url=creative.image_url,
                    html=creative.html if creative.kind == "html" else "",
                ))
    return EdgeOffers(
        placements=sizes,
        offers=tuple(offers),
        knobs={"smoothing": knobs.smoothing, "lift_power": knobs.lift_power, "lift_max": knobs.lift_max},
        interest_top=int(ads_setting("INTEREST_TOP")),
    )


def _offer_read(value: str, now: float) -> tuple[str, dict[str, object] | None]:
    max_age = int(ads_setting("EDGE_OFFER_MAX_AGE_S"))
    try:
        payload = signing.loads(value, salt=OFFER_SALT, max_age=max_age)
    except signing.SignatureExpired:
        return OFFER_EXPIRED, None
    except (signing.BadSignature, ValueError, UnicodeError):
        return OFFER_INVALID, None
    if not isinstance(payload, dict):
        return OFFER_INVALID, None
    return OK, payload


def edge_serve(*, offers: Sequence[str], visitor: Visitor, now: float | None = None) -> list[EdgeServed]:
    """Reserve the offers the browser chose (one per placement, in page order) and answer each with its
    signed click and impression links; see the module docstring. A bot reserves nothing (its slots
    count as invalid impressions, ``bot``, as on a page the server fills); an offer that is not genuine
    counts as ``unknown_serve``."""
    now = time.time() if now is None else now
    if visitor.is_bot:
        invalid_record(kind=IMPRESSION, reason=BOT, campaign_id=None, n=len(offers), now=now)
        return [EdgeServed(placement="", creative_id=None, outcome=BOT) for _ in offers]
    catalog = catalog_current()
    answers: list[EdgeServed | None] = []
    chosen: list[tuple[int, Choice, Charge]] = []
    for index, value in enumerate(offers):
        status, payload = _offer_read(value, now)
        if payload is None:
            if status == OFFER_INVALID:  # not an offer this server made
                invalid_record(kind=IMPRESSION, reason=UNKNOWN_SERVE, campaign_id=None, now=now)
            answers.append(EdgeServed(placement="", creative_id=None, outcome=status))
            continue
        placement = str(payload.get("p", ""))[:64]
        creative = catalog.creatives_by_id.get(_int(payload.get("c")))
        campaign = catalog.campaigns_by_id.get(creative.campaign_id) if creative is not None else None
        if creative is None or campaign is None or campaign.id != _int(payload.get("k")):
            # a genuine offer of a creative paused or ended since: no ad, nobody's fault
            answers.append(EdgeServed(placement=placement, creative_id=None, outcome=OFFER_ENDED))
            continue
        answers.append(None)
        choice = Choice(
            placement=placement, creative=creative, campaign=campaign, house=campaign.tier == "house",
            p_click=0.0, expected_value_micros=0.0, reason="chosen on the visitor's device", serve_id=uuid.uuid4().hex,
        )
        charge = Charge(
            campaign_id=campaign.id, creative_id=creative.id,
            impression_price_micros=campaign.price_micros if campaign.pricing == "cpm" else 0,
            daily_budget_micros=campaign.daily_budget_micros, total_budget_micros=campaign.total_budget_micros,
        )
        chosen.append((index, choice, charge))
    try:
        outcomes = ledger().impressions_reserve(charges=[c for _, _, c in chosen], user_id="", now=now) if chosen else []
    except LedgerUnavailable:
        logger.warning("ads.ledger_unavailable at edge serve: house ads")
        outcomes = [LEDGER_DOWN] * len(chosen)
    served: dict[str, int] = {}
    for (index, choice, _), outcome in zip(chosen, outcomes, strict=True):
        assert choice.creative is not None and choice.campaign is not None
        if outcome != OK:
            answers[index] = EdgeServed(placement=choice.placement, creative_id=choice.creative.id, outcome=outcome)
            continue
        binding = visitor.binding()
        token = choice_token(choice=choice, user_id="", binding=binding, origin=EDGE)
        click_url, impression_url = token_urls(token)
        answers[index] = EdgeServed(
            placement=choice.placement, creative_id=choice.creative.id, outcome=OK,
            click_url=click_url, impression_url=impression_url, serve_id=token.serve_id if token else "",
        )
        key = edge_metric(campaign_id=choice.campaign.id, creative_id=choice.creative.id, metric="served")
        served[key] = served.get(key, 0) + 1
    edge_count(served, now=now)
    return [a if a is not None else EdgeServed(placement="", creative_id=None, outcome=OFFER_INVALID) for a in answers]


def _int(value: object) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return -1


EDGE_METRICS = ("served", "viewable", "clicks")


def edge_metric(*, campaign_id: int, creative_id: int, metric: str) -> str:
    """The report counter of one creative's edge-chosen impressions (``<campaign>:edge.<creative>.<metric>``)."""
    return f"{campaign_id}:edge.{creative_id}.{metric}"


def edge_count(counts: dict[str, int], *, now: float | None = None) -> None:
    """Add to the edge report counters; never raises (a count lost is logged, the ad still runs)."""
    if not counts:
        return
    try:
        ledger().report_add(counts=counts, now=time.time() if now is None else now)
    except LedgerUnavailable:
        logger.warning("ads.edge_not_counted ledger unavailable")
