"""The one place that decides which ad runs: ``ads_select``.

Promises, for each decision (one page, or one API call, with one or more placements):

1. eligibility from the in-process catalog: active, inside its dates, device and hour targeted,
   budget left (total and today), visitor under both frequency caps, pacing (today's spend not ahead
   of an even spread over the day), interest threshold met, creative fits the placement's size;
2. the click probability of each creative = the lift of the visitor's predicted interest in the
   campaign's categories over the population's (``predict_interests`` with what is left of the
   deadline) x a Thompson sample of the creative's quality: its clicks per unit of exposure, exposure
   being the sum of the lifts of the impressions it was served with (``quality_posteriors``: a
   Gamma-Poisson posterior around its campaign's and all creatives' pooled rate, so a new creative is
   tried, and a creative shown mostly to interested visitors is not credited for their interest) x the
   wear-out of a campaign the visitor has already seen today (``wear_out_factors``, learned from the
   ledger's repeat statistics; each reservation counts the impression's expected clicks under its repeat
   bucket, and its click token carries the bucket so that its click is counted there too);
3. expected value per impression: CPC bid x click probability, CPM bid / 1000; the highest tier with
   an eligible ad wins (sponsorship, standard, house), then the highest expected value;
4. placements are filled in order, one advertiser at most once per decision (house excepted), each
   choice confirmed by the ledger's atomic check-and-count (which also counts the served impression);
5. when prediction fails, only house ads run; a placement with nothing eligible gets a house ad.

The path reads the catalog from memory, the counters in one ledger round trip and reserves once per
placement: no ORM query per row (a sampled explanation is the one write, one row).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adsite.ads.accounting import (
    LATE,
    NO_REPEAT,
    OK,
    Charge,
    LedgerUnavailable,
    Snapshot,
    ledger,
    repeat_bucket,
)
from adsite.ads.catalog import TIER_RANK, CampaignView, Catalog, CreativeView, catalog_current
from adsite.ads.conf import ads_setting
from adsite.ads.eligibility import (
    CAPPED,
    LEDGER_UNAVAILABLE,
    OUT_OF_BUDGET,
    UNTARGETED,
    counters_filter,
    prefilter,
)
from adsite.ads.metrics import decision_observe
from adsite.ads.scoring import (
    ADSITE_POLICY,
    EXPOSURE_UNIT,
    Candidate,
    Knobs,
    Quality,
    SelectionPolicy,
    interest_lift,
    quality_posteriors,
    wear_out_factors,
    weighted_score,
)
from adsite.platform import platform
from inference.api import SERVED_BY, Deadline, Interests, population_interests, predict_interests

logger = logging.getLogger(__name__)


# who supplied a decision's interests: a model of the chain (SERVED_BY); "context", the request's own
# categories (an anonymous visitor, or no time left to ask); "none", the prediction failed
DECISION_SERVED_BY = (*SERVED_BY, "context", "none")


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """One slot of a page or API call to fill (the ``Placement`` model is the site's list of them)."""

    name: str
    size: str = ""  # "" = the size the catalog knows for ``name``


@dataclass(frozen=True, slots=True)
class DecisionContext:
    device: str = "other"
    # the page's own categories: the interests used when the visitor is not personalised (DNT/GPC)
    categories: tuple[str, ...] = ()
    personalized: bool = True
    now: float | None = None  # epoch seconds; None = the clock
    explain: bool = False
    # how candidates are scored: the site's policy unless a caller (the simulation) passes another
    policy: SelectionPolicy = ADSITE_POLICY
    rng: random.Random | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    placement: str
    creative: CreativeView | None  # None: the site's built-in house ad
    campaign: CampaignView | None
    house: bool
    p_click: float
    expected_value_micros: float
    reason: str
    serve_id: str  # one id per served impression: the click token's id (billable once)
    repeat: int = NO_REPEAT  # its repeat bucket (the click token carries it: clicks are counted under it)


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    user_id: str
    choices: tuple[Choice, ...]
    interests_served_by: str
    fallback_reason: str | None
    interest_scores: tuple[tuple[str, float], ...]
    elapsed_ms: float
    filtered: dict[str, int] = field(default_factory=dict)  # reason -> campaigns removed
    explanation: dict[str, Any] | None = None


@dataclass(slots=True)
class _Scored:
    campaign: CampaignView
    creative: CreativeView
    p_click: float
    value: float
    relevance: float
    lift: float
    repeat: int = NO_REPEAT  # the repeat bucket of this impression (the visitor's earlier ones today)
    wear: float = 1.0
    quality: Quality | None = None  # the creative's quality posterior (None: the policy reads none)


def _population_shares(catalog: Catalog) -> tuple[dict[str, float], dict[int, float]]:
    """Interest shares of an unknown visitor (the population), and each campaign's weighted score under
    them, refreshed with the catalog."""
    owner = platform()
    cached = owner.population
    if cached is not None and cached[0] == catalog.built_at:
        return cached[1], cached[2]
    try:
        answer = population_interests(
            deadline=Deadline(float(ads_setting("PREDICT_BUDGET_MS")) * 4), top=int(ads_setting("INTEREST_TOP"))
        )
        shares = answer.shares()
    except Exception:
        logger.exception("ads.population_interests_failed")
        shares = {}
    bases = {c.id: weighted_score(c, shares) for c in catalog.campaigns if c.interests}
    owner.population = (catalog.built_at, shares, bases)
    return shares, bases


def _quality_posteriors(
    catalog: Catalog, live: Sequence[CampaignView], snap: Snapshot, knobs: Knobs
) -> dict[int, Quality]:
    """``quality_posteriors`` of the live campaigns, reused by this process's decisions while the ledger
    shares the same creative statistics with them (``Snapshot.stats_generation``) for the same catalog
    build, live campaigns and knobs (the posteriors were ~10% of a decision's time, recomputed each time
    from statistics that change at most every ``SNAPSHOT_MAX_AGE_S``)."""
    if snap.stats_generation is None:
        return quality_posteriors(live, snap, knobs)
    key = (catalog.built_at, snap.stats_generation, tuple(c.id for c in live), knobs)
    owner = platform()
    cached = owner.qualities
    if cached is not None and cached[0] == key:
        return cached[1]
    qualities = quality_posteriors(live, snap, knobs)
    owner.qualities = (key, qualities)
    return qualities


def _interests(user_id: str, context: DecisionContext, deadline: Deadline) -> tuple[Interests | None, bool]:
    """(interests, failed). Visitors who are not personalised get their page's categories."""
    if not user_id or not context.personalized:
        return _page_interests(context.categories, None), False
    budget = min(float(ads_setting("PREDICT_BUDGET_MS")), deadline.remaining_ms() - 1.0)
    if budget <= 0:  # no time left to ask: decide from the page, as for a visitor without a profile
        return _page_interests(context.categories, "over_budget"), False
    try:
        answer = predict_interests(user_id, deadline=Deadline(budget), top=int(ads_setting("INTEREST_TOP")))
    except Exception:
        logger.exception("ads.predict_interests_failed")
        return None, True
    if not answer.scores and answer.fallback_reason == "error":
        return answer, True
    return answer, False


def _page_interests(categories: Sequence[str], reason: str | None) -> Interests:
    """The page's own categories as equal interest shares (no visitor profile is used)."""
    shares = [(slug, 1.0 / len(categories)) for slug in categories]
    return Interests.from_shares(shares, served_by="context", fallback_reason=reason)


# the interest lift from which an explanation says the ad matches the visitor's interest (below it, the
# visitor is about as interested as anyone: a new visitor's answer is the population's)
NOTICEABLE_LIFT = 1.05

def _charge(cand: _Scored) -> Charge:
    campaign = cand.campaign
    return Charge(
        campaign_id=campaign.id,
        creative_id=cand.creative.id,
        impression_price_micros=campaign.price_micros if campaign.pricing == "cpm" else 0,
        daily_budget_micros=campaign.daily_budget_micros,
        total_budget_micros=campaign.total_budget_micros,
        cap_per_hour=campaign.cap_per_hour,
        cap_per_day=campaign.cap_per_day,
        extra_exposure_micros=round((cand.lift - 1.0) * EXPOSURE_UNIT),
        repeat=cand.repeat,
        # the click model's expected clicks of this impression before wear-out (what wear-out is learned against)
        expected_micros=round(cand.quality.mean * cand.lift * EXPOSURE_UNIT) if cand.quality is not None else 0,
    )


def _placements_fill(
    candidates: Sequence[_Scored], *, sizes: Sequence[str], filtered: dict[int, str], user_id: str, now: float
) -> list[_Scored | None]:
    """The candidate reserved for each placement (``None``: the house ad), best first, with distinct
    advertisers (house ads excepted) and creatives across the page.

    The page is planned from the snapshot and its reservations made in one ledger call (one Redis
    round trip); each reservation is still atomic and checks budget and caps again. A placement whose
    reservation is refused (another request got there first) and any placement left empty are then
    filled one reservation at a time from the remaining candidates.
    """
    used_advertisers: set[int] = set()
    used_creatives: set[int] = set()
    refused: set[int] = set()

    def fits(cand: _Scored, size: str) -> bool:
        campaign, creative = cand.campaign, cand.creative
        return (
            campaign.id not in refused
            and creative.size in ("fluid", size)
            and creative.id not in used_creatives
            and (campaign.tier == "house" or campaign.advertiser_id not in used_advertisers)
        )

    def take(cand: _Scored) -> None:
        used_creatives.add(cand.creative.id)
        if cand.campaign.tier != "house":
            used_advertisers.add(cand.campaign.advertiser_id)

    def refuse(cand: _Scored, outcome: str) -> None:  # budget or cap reached since the snapshot (or too late)
        refused.add(cand.campaign.id)
        filtered[cand.campaign.id] = (
            LEDGER_UNAVAILABLE if outcome == LATE else CAPPED if outcome.startswith("capped") else OUT_OF_BUDGET
        )

    planned: list[_Scored | None] = []
    for size in sizes:
        cand = next((c for c in candidates if fits(c, size)), None)
        if cand is not None:
            take(cand)
        planned.append(cand)
    reserving = [(i, cand) for i, cand in enumerate(planned) if cand is not None]
    try:
        outcomes = ledger().impressions_reserve(charges=[_charge(c) for _, c in reserving], user_id=user_id, now=now)
    except LedgerUnavailable:  # nothing could be reserved, so nothing planned may run
        logger.warning("ads.ledger_unavailable at reservation: house ads")
        for _, cand in reserving:
            filtered[cand.campaign.id] = LEDGER_UNAVAILABLE
        return [None] * len(sizes)
    for (i, cand), outcome in zip(reserving, outcomes, strict=True):
        if outcome != OK:
            refuse(cand, outcome)
            used_creatives.discard(cand.creative.id)
            if cand.campaign.tier != "house":
                used_advertisers.discard(cand.campaign.advertiser_id)
            planned[i] = None
    if LATE in outcomes:  # the ledger answers past its deadline: no more reservations for this page
        return planned
    for i, size in enumerate(sizes):
        if planned[i] is not None:
            continue
        for cand in candidates:
            if not fits(cand, size):
                continue
            try:
                outcome = ledger().impression_reserve(charge=_charge(cand), user_id=user_id, now=now)
            except LedgerUnavailable:
                logger.warning("ads.ledger_unavailable at reservation: house ad")
                filtered[cand.campaign.id] = LEDGER_UNAVAILABLE
                return planned
            if outcome != OK:
                refuse(cand, outcome)
                if outcome == LATE:
                    return planned
                continue
            take(cand)
            planned[i] = cand
            break
    return planned


def ads_select(
    *,
    user_id: str,
    placements: Sequence[PlacementRequest],
    deadline: Deadline | None = None,
    context: DecisionContext | None = None,
) -> Decision:
    """Choose an ad (or the house ad) for each placement of one page; see the module docstring."""
    context = context or DecisionContext()
    deadline = deadline or Deadline(float(ads_setting("BUDGET_MS")))
    knobs = Knobs.read()
    rng = context.rng or platform().decision_rng
    now = context.now if context.now is not None else time.time()
    hour = int(now // 3600) % 24
    catalog = catalog_current()
    user_id = user_id if context.personalized else ""

    interests, failed = _interests(user_id, context, deadline)
    shares = interests.shares() if interests is not None else {}
    population_bases = _population_shares(catalog)[1] if not failed else {}
    policy = context.policy

    filtered: dict[int, str] = {}
    live: list[CampaignView] = []
    for campaign in catalog.campaigns:
        reason = prefilter(campaign, now=now, device=context.device, hour=hour, house_only=failed)
        if reason:
            filtered[campaign.id] = reason
        else:
            live.append(campaign)
    try:
        snap = ledger().snapshot(
            campaign_ids=[c.id for c in live],
            creative_ids=[cr.id for c in live for cr in c.creatives],
            user_id=user_id,
            now=now,
        )
    except LedgerUnavailable:  # budgets and caps unknown: no campaign may run, every slot gets the house ad
        logger.warning("ads.ledger_unavailable at snapshot: house ads")
        filtered.update((c.id, LEDGER_UNAVAILABLE) for c in live)
        live, snap = [], Snapshot.empty()
    qualities = _quality_posteriors(catalog, live, snap, knobs) if policy.reads_quality else {}
    wear_out = wear_out_factors(snap, knobs)
    candidates: list[_Scored] = []
    for campaign in live:
        reason = counters_filter(campaign, snap, now, knobs)
        relevance = weighted_score(campaign, shares) if campaign.interests else 0.0
        if reason is None and campaign.interest_min_score > 0 and relevance < campaign.interest_min_score:
            reason = UNTARGETED
        if reason:
            filtered[campaign.id] = reason
            continue
        lift = interest_lift(relevance, population_bases.get(campaign.id, 0.0), knobs) if campaign.interests else 1.0
        # a visitor's earlier impressions of the campaign today (none known without a visitor id)
        earlier = snap.user_day.get(campaign.id)
        repeat = NO_REPEAT if earlier is None else repeat_bucket(earlier)
        wear = 1.0 if earlier is None else wear_out[repeat]
        for creative in campaign.creatives:
            candidate = Candidate(
                user_id=user_id, campaign=campaign, creative=creative, lift=lift,
                clicks=snap.clicks.get(creative.id, 0), impressions=snap.impressions.get(creative.id, 0), wear=wear,
            )
            quality = qualities.get(creative.id)
            p = policy.click_probability(candidate, quality=quality, rng=rng, knobs=knobs)
            candidates.append(_Scored(campaign, creative, p, policy.value(candidate, p), relevance, lift, repeat, wear, quality))
    # best first: tier, then expected value (a stable tie-break on ids keeps decisions reproducible)
    candidates.sort(key=lambda c: (TIER_RANK[c.campaign.tier], -c.value, c.creative.id))

    planned = _placements_fill(
        candidates,
        sizes=[p.size or catalog.placement_sizes.get(p.name, "") for p in placements],
        filtered=filtered,
        user_id=user_id,
        now=now,
    )
    choices: list[Choice] = []
    for placement, cand in zip(placements, planned, strict=True):
        if cand is None:
            choices.append(Choice(
                placement=placement.name, creative=None, campaign=None, house=True, p_click=0.0,
                expected_value_micros=0.0,
                reason=(
                    "ad counters unavailable: house ad" if LEDGER_UNAVAILABLE in filtered.values()
                    else "prediction failed: house ad" if failed else "nothing eligible: house ad"
                ),
                serve_id=uuid.uuid4().hex,
            ))
            continue
        choices.append(Choice(
            placement=placement.name,
            creative=cand.creative,
            campaign=cand.campaign,
            house=cand.campaign.tier == "house",
            p_click=cand.p_click,
            expected_value_micros=cand.value,
            reason=_reason(cand, interests, failed),
            serve_id=uuid.uuid4().hex,
            repeat=cand.repeat,
        ))

    counts: dict[str, int] = {}
    for reason in filtered.values():
        counts[reason] = counts.get(reason, 0) + 1
    decision_id = str(uuid.uuid4())
    explanation = None
    sampled = rng.random() < knobs.explain_sample
    if context.explain or sampled:
        explanation = _explanation(
            interests=interests, failed=failed, candidates=candidates, filtered=filtered, catalog=catalog,
            choices=choices, policy=policy.name, full=context.explain,
        )
    decision = Decision(
        decision_id=decision_id,
        user_id=user_id,
        choices=tuple(choices),
        interests_served_by=interests.served_by if interests is not None else "none",
        fallback_reason=(interests.fallback_reason if interests is not None else "error"),
        interest_scores=interests.scores if interests is not None else (),
        elapsed_ms=deadline.elapsed_ms(),
        filtered=counts,
        explanation=explanation,
    )
    if sampled and explanation is not None:
        from adsite.ads.services.explanations import explanation_keep

        explanation_keep(decision=decision)
    decision_observe(
        placements=[p.name for p in placements],
        known_placements=catalog.placement_sizes,
        served_by=decision.interests_served_by,
        tiers=[ch.campaign.tier if ch.campaign is not None else "builtin" for ch in choices],
        filtered=filtered,
        seconds=deadline.elapsed_ms() / 1000.0,
        filled=[(ch.placement, ch.campaign.tier if ch.campaign is not None else "builtin") for ch in choices],
    )
    return decision


def _reason(cand: _Scored, interests: Interests | None, failed: bool) -> str:
    campaign = cand.campaign
    if campaign.tier == "house":
        return "house ad" + (" (prediction failed)" if failed else "")
    parts = [f"{campaign.tier} {campaign.pricing.upper()} campaign"]
    if campaign.interests:
        top = max(campaign.interests, key=lambda item: item[1])[0]
        if interests is not None and interests.scores and cand.lift >= NOTICEABLE_LIFT:
            parts.append(f"matches your interest in {top} (x{cand.lift:.2f})")
        else:  # a visitor without history, or no more interested than anyone: claim nothing about them
            parts.append(f"for readers of {top}")
    else:
        parts.append("shown to every visitor")
    if cand.wear < 1.0:
        parts.append(f"seen before today (x{cand.wear:.2f})")
    parts.append(f"expected click rate {cand.p_click:.2%}")
    return "; ".join(parts)


def _explanation(
    *,
    interests: Interests | None,
    failed: bool,
    candidates: Sequence[_Scored],
    filtered: Mapping[int, str],
    catalog: Catalog,
    choices: Sequence[Choice],
    policy: str,
    full: bool = True,
) -> dict[str, Any]:
    """Why: interests used, every candidate's score (the best 20 when only sampled), the filters."""
    return {
        "policy": policy,
        "prediction_failed": failed,
        "interests": {
            "served_by": interests.served_by if interests else "none",
            "fallback_reason": interests.fallback_reason if interests else "error",
            "scores": [{"category": s, "score": round(v, 6)} for s, v in (interests.scores if interests else ())][:10],
        },
        "candidates": [
            {
                "campaign_id": c.campaign.id,
                "creative_id": c.creative.id,
                "advertiser": c.campaign.advertiser,
                "tier": c.campaign.tier,
                "relevance": round(c.relevance, 6),
                "interest_lift": round(c.lift, 4),
                "repeat": c.repeat,
                "wear_out": round(c.wear, 4),
                "p_click": round(c.p_click, 6),
                "expected_value_micros": round(c.value, 3),
            }
            for c in (candidates if full else candidates[:20])
        ],
        "filtered": [
            {"campaign_id": cid, "campaign": catalog.campaigns_by_id[cid].name, "reason": reason}
            for cid, reason in sorted(filtered.items())
            if cid in catalog.campaigns_by_id
        ],
        "chosen": [
            {"placement": ch.placement, "creative_id": ch.creative.id if ch.creative else None, "reason": ch.reason}
            for ch in choices
        ],
    }
