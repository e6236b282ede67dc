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
   tried, and a creative shown mostly to interested visitors is not credited for their interest);
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
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adsite.ads.catalog import TIER_RANK, CampaignView, Catalog, CreativeView, catalog_current
from adsite.ads.conf import ads_setting
from adsite.ads.ledger import OK, Charge, LedgerUnavailable, Snapshot, ledger
from adsite.ads.metrics import decision_observe
from inference.api import SERVED_BY, Deadline, Interests, predict_interests

logger = logging.getLogger(__name__)

# filter reasons (what the explanation reports for campaigns that were not candidates)
OUT_OF_DATES = "out_of_dates"
UNTARGETED = "untargeted"
OUT_OF_BUDGET = "out_of_budget"
CAPPED = "capped"
PACED = "paced"
NO_CREATIVE = "no_fitting_creative"
SAME_ADVERTISER = "same_advertiser"
PREDICTION_FAILED = "prediction_failed"
# the counters (budget, caps) cannot be read or reserved: nothing paid may run, the house ad does
LEDGER_UNAVAILABLE = "ledger_unavailable"

POLICIES = ("adsite", "random", "untargeted", "oracle")
# who supplied a decision's interests: a model of the chain (SERVED_BY); "context", the request's own
# categories (an anonymous visitor, or no time left to ask); "none", the prediction failed
DECISION_SERVED_BY = (*SERVED_BY, "context", "none")
# (user_id, campaign, creative) -> click probability: only the simulation's oracle supplies one
OracleScorer = Callable[[str, CampaignView, CreativeView], float]


@dataclass(frozen=True, slots=True)
class Placement:
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
    policy: str = "adsite"
    oracle: OracleScorer | None = None
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
class _Candidate:
    campaign: CampaignView
    creative: CreativeView
    p_click: float
    value: float
    relevance: float
    lift: float


@dataclass(frozen=True, slots=True)
class _Knobs:
    """The ads settings one decision uses, read once per decision (not once per campaign or creative)."""

    pacing: bool
    pacing_slack: float
    quality_prior_shape: float
    quality_by_campaign: bool
    ctr_prior_clicks: float
    ctr_prior_impressions: float
    lift_max: float
    smoothing: float
    lift_power: float
    explain_sample: float

    @classmethod
    def read(cls) -> _Knobs:
        return cls(
            pacing=bool(ads_setting("PACING")),
            pacing_slack=float(ads_setting("PACING_SLACK")),
            quality_prior_shape=float(ads_setting("QUALITY_PRIOR_SHAPE")),
            quality_by_campaign=ads_setting("QUALITY_POOL") == "campaign",
            ctr_prior_clicks=float(ads_setting("CTR_PRIOR_CLICKS")),
            ctr_prior_impressions=float(ads_setting("CTR_PRIOR_IMPRESSIONS")),
            lift_max=float(ads_setting("INTEREST_LIFT_MAX")),
            smoothing=float(ads_setting("INTEREST_SMOOTHING")),
            lift_power=float(ads_setting("INTEREST_LIFT_POWER")),
            explain_sample=float(ads_setting("EXPLAIN_SAMPLE")),
        )


def _weighted_score(campaign: CampaignView, scores: Mapping[str, float]) -> float:
    total_weight = sum(w for _, w in campaign.interests)
    if not total_weight:
        return 0.0
    return sum(w * scores.get(slug, 0.0) for slug, w in campaign.interests) / total_weight


def _shares(scores: Sequence[tuple[str, float]], served_by: str = "context") -> dict[str, float]:
    """The answer as interest shares (summing to at most 1; a category missing from it scores 0).

    ``predict_interests`` answers a logistic of each model's own score (ordering only), which
    squeezes everything into (0.5, 0.75) for the prior; the logit undoes it. The prior's score is
    already a share (population share blended with the visitor's decayed share); a trained model's
    score is a ranking score, made a share by a softmax over the answer. Page-context interests
    (``served_by == "context"``) are shares as given.
    """
    if not scores:
        return {}
    if served_by == "context":
        return {slug: min(max(float(v), 0.0), 1.0) for slug, v in scores}
    logits = {}
    for slug, v in scores:
        p = min(max(float(v), 1e-9), 1.0 - 1e-9)
        logits[slug] = math.log(p / (1.0 - p))
    if served_by == "prior":
        total = sum(max(x, 0.0) for x in logits.values())
        return {slug: max(x, 0.0) / total for slug, x in logits.items()} if total > 0 else {}
    top = max(logits.values())
    weights = {slug: math.exp(x - top) for slug, x in logits.items()}
    total = sum(weights.values())
    return {slug: w / total for slug, w in weights.items()}


_population: tuple[float, dict[str, float], dict[int, float]] | None = None


def _population_shares(catalog: Catalog) -> tuple[dict[str, float], dict[int, float]]:
    """Interest shares of an unknown visitor (the population), and each campaign's weighted score under
    them, refreshed with the catalog."""
    global _population
    cached = _population
    if cached is not None and cached[0] == catalog.built_at:
        return cached[1], cached[2]
    try:
        answer = predict_interests(
            "", deadline=Deadline(float(ads_setting("PREDICT_BUDGET_MS")) * 4), top=int(ads_setting("INTEREST_TOP"))
        )
        shares = _shares(answer.scores, answer.served_by)
    except Exception:
        logger.exception("ads.population_interests_failed")
        shares = {}
    bases = {c.id: _weighted_score(c, shares) for c in catalog.campaigns if c.interests}
    _population = (catalog.built_at, shares, bases)
    return shares, bases


def _interests(user_id: str, context: DecisionContext, deadline: Deadline) -> tuple[Interests | None, bool]:
    """(interests, failed). Visitors who are not personalised get their page's categories."""
    if not user_id or not context.personalized:
        cats = context.categories
        scores = tuple((slug, 1.0 / len(cats)) for slug in cats) if cats else ()
        return Interests(scores, "context", "", None, 0.0), False
    budget = min(float(ads_setting("PREDICT_BUDGET_MS")), deadline.remaining_ms() - 1.0)
    if budget <= 0:  # no time left to ask: decide from the page, as for a visitor without a profile
        cats = context.categories
        scores = tuple((slug, 1.0 / len(cats)) for slug in cats) if cats else ()
        return Interests(scores, "context", "", "over_budget", 0.0), False
    try:
        answer = predict_interests(user_id, deadline=Deadline(budget), top=int(ads_setting("INTEREST_TOP")))
    except Exception:
        logger.exception("ads.predict_interests_failed")
        return None, True
    if not answer.scores and answer.fallback_reason == "error":
        return answer, True
    return answer, False


def _pacing_allows(campaign: CampaignView, spent_today: int, now: float, knobs: _Knobs) -> bool:
    """Even daily spend: today's spend may not run ahead of the elapsed share of the day (+ slack)."""
    if not knobs.pacing or campaign.tier == "house" or campaign.daily_budget_micros <= 0:
        return True
    elapsed = (now % 86400) / 86400
    allowed = campaign.daily_budget_micros * min(1.0, elapsed + knobs.pacing_slack)
    return spent_today < allowed


def _prefilter(campaign: CampaignView, *, now: float, device: str, hour: int, house_only: bool) -> str | None:
    if house_only and campaign.tier != "house":
        return PREDICTION_FAILED
    if campaign.starts_at.timestamp() > now or (campaign.ends_at is not None and campaign.ends_at.timestamp() <= now):
        return OUT_OF_DATES
    if (campaign.devices and device not in campaign.devices) or (campaign.hours and hour not in campaign.hours):
        return UNTARGETED
    if not campaign.creatives:
        return NO_CREATIVE
    return None


def _counters_filter(campaign: CampaignView, snap: Snapshot, now: float, knobs: _Knobs) -> str | None:
    c = campaign.id
    if snap.spend_total.get(c, 0) >= campaign.total_budget_micros or snap.spend_today.get(c, 0) >= campaign.daily_budget_micros:
        return OUT_OF_BUDGET
    if (campaign.cap_per_hour and snap.user_hour.get(c, 0) >= campaign.cap_per_hour) or (
        campaign.cap_per_day and snap.user_day.get(c, 0) >= campaign.cap_per_day
    ):
        return CAPPED
    if not _pacing_allows(campaign, snap.spend_today.get(c, 0), now, knobs):
        return PACED
    return None


# the interest lift from which an explanation says the ad matches the visitor's interest (below it, the
# visitor is about as interested as anyone: a new visitor's answer is the population's)
NOTICEABLE_LIFT = 1.05

EXPOSURE_UNIT = 1_000_000  # the ledger keeps the extra exposure (summed lift - 1) in millionths


@dataclass(frozen=True, slots=True)
class Quality:
    """A creative's clicks per unit of exposure (a click rate at lift 1): a Gamma(shape, rate) posterior."""

    shape: float
    rate: float

    @property
    def mean(self) -> float:
        return self.shape / self.rate

    def sample(self, rng: random.Random) -> float:
        return rng.gammavariate(self.shape, 1.0 / self.rate)


def _exposure(snap: Snapshot, creative_id: int) -> float:
    """Summed lifts of the creative's impressions (one counted before exposure was kept weighs 1)."""
    impressions = snap.impressions.get(creative_id, 0)
    return max(impressions + snap.extra_exposure.get(creative_id, 0) / EXPOSURE_UNIT, 0.0)


def quality_posteriors(
    campaigns: Sequence[CampaignView], snap: Snapshot, knobs: _Knobs | None = None
) -> dict[int, Quality]:
    """Each creative's quality posterior, learned from clicks relative to what its audience predicted.

    Model: clicks_i ~ Poisson(q_i x exposure_i), exposure_i = the summed interest lifts of its
    impressions, so the interest the visitors brought is accounted for and q_i is the creative's own
    appeal. Prior, hierarchical: the pooled rate of all non-house creatives (over the CTR prior,
    ``CTR_PRIOR_CLICKS`` / ``CTR_PRIOR_IMPRESSIONS``), then (``QUALITY_POOL = "campaign"``) the
    campaign's pooled rate around it; each level weighs ``QUALITY_PRIOR_SHAPE`` clicks. Posterior:
    Gamma(shape + clicks_i, shape / pooled + exposure_i), conjugate, so one pass over the snapshot.
    """
    knobs = knobs or _Knobs.read()
    shape = knobs.quality_prior_shape
    by_campaign = knobs.quality_by_campaign
    stats = {cr.id: (float(snap.clicks.get(cr.id, 0)), _exposure(snap, cr.id)) for c in campaigns for cr in c.creatives}
    pooled_clicks = pooled_exposure = 0.0
    for campaign in campaigns:
        if campaign.tier != "house":
            for creative in campaign.creatives:
                pooled_clicks += stats[creative.id][0]
                pooled_exposure += stats[creative.id][1]
    overall = (knobs.ctr_prior_clicks + pooled_clicks) / (knobs.ctr_prior_impressions + pooled_exposure)
    out: dict[int, Quality] = {}
    for campaign in campaigns:
        centre = overall
        if by_campaign:
            clicks = sum(stats[cr.id][0] for cr in campaign.creatives)
            exposure = sum(stats[cr.id][1] for cr in campaign.creatives)
            centre = (shape + clicks) / (shape / overall + exposure)
        for creative in campaign.creatives:
            clicks, exposure = stats[creative.id]
            out[creative.id] = Quality(shape + clicks, shape / centre + exposure)
    return out


def _p_click(
    *,
    policy: str,
    rng: random.Random,
    clicks: int,
    impressions: int,
    quality: Quality | None,
    lift: float,
    user_id: str,
    campaign: CampaignView,
    creative: CreativeView,
    oracle: OracleScorer | None,
    knobs: _Knobs,
) -> float:
    if policy == "adsite" and quality is not None:
        return min(1.0, quality.sample(rng) * lift)
    if policy == "untargeted":
        return (knobs.ctr_prior_clicks + min(clicks, impressions)) / (knobs.ctr_prior_impressions + impressions)
    if policy == "oracle" and oracle is not None:
        return oracle(user_id, campaign, creative)
    return rng.random()  # random


def _charge(cand: _Candidate) -> Charge:
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
    )


def _placements_fill(
    candidates: Sequence[_Candidate], *, sizes: Sequence[str], filtered: dict[int, str], user_id: str, now: float
) -> list[_Candidate | None]:
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

    def fits(cand: _Candidate, size: str) -> bool:
        campaign, creative = cand.campaign, cand.creative
        return (
            campaign.id not in refused
            and creative.size in ("fluid", size)
            and creative.id not in used_creatives
            and (campaign.tier == "house" or campaign.advertiser_id not in used_advertisers)
        )

    def take(cand: _Candidate) -> None:
        used_creatives.add(cand.creative.id)
        if cand.campaign.tier != "house":
            used_advertisers.add(cand.campaign.advertiser_id)

    def refuse(cand: _Candidate, outcome: str) -> None:  # budget or cap reached since the snapshot
        refused.add(cand.campaign.id)
        filtered[cand.campaign.id] = CAPPED if outcome.startswith("capped") else OUT_OF_BUDGET

    planned: list[_Candidate | None] = []
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
                continue
            take(cand)
            planned[i] = cand
            break
    return planned


def ads_select(
    *,
    user_id: str,
    placements: Sequence[Placement],
    deadline: Deadline | None = None,
    context: DecisionContext | None = None,
) -> Decision:
    """Choose an ad (or the house ad) for each placement of one page; see the module docstring."""
    context = context or DecisionContext()
    deadline = deadline or Deadline(float(ads_setting("BUDGET_MS")))
    knobs = _Knobs.read()
    rng = context.rng or random.Random()
    now = context.now if context.now is not None else time.time()
    hour = int(now // 3600) % 24
    catalog = catalog_current()
    user_id = user_id if context.personalized else ""

    interests, failed = _interests(user_id, context, deadline)
    shares = _shares(interests.scores, interests.served_by) if interests is not None else {}
    population_bases = _population_shares(catalog)[1] if not failed else {}
    lift_max, smoothing, lift_power = knobs.lift_max, knobs.smoothing, knobs.lift_power

    filtered: dict[int, str] = {}
    live: list[CampaignView] = []
    for campaign in catalog.campaigns:
        reason = _prefilter(campaign, now=now, device=context.device, hour=hour, house_only=failed)
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
    qualities = quality_posteriors(live, snap, knobs) if context.policy == "adsite" else {}
    candidates: list[_Candidate] = []
    for campaign in live:
        reason = _counters_filter(campaign, snap, now, knobs)
        relevance = _weighted_score(campaign, shares) if campaign.interests else 0.0
        if reason is None and campaign.interest_min_score > 0 and relevance < campaign.interest_min_score:
            reason = UNTARGETED
        if reason:
            filtered[campaign.id] = reason
            continue
        if campaign.interests:
            # the visitor's interest over the population's, smoothed (a category nobody scores is neutral)
            base = population_bases.get(campaign.id, 0.0)
            ratio = ((relevance + smoothing) / (base + smoothing)) ** lift_power
            lift = min(lift_max, max(1.0 / lift_max, ratio))
        else:
            lift = 1.0
        for creative in campaign.creatives:
            p = _p_click(
                policy=context.policy, rng=rng, clicks=snap.clicks.get(creative.id, 0),
                impressions=snap.impressions.get(creative.id, 0), quality=qualities.get(creative.id), lift=lift,
                user_id=user_id,
                campaign=campaign, creative=creative, oracle=context.oracle, knobs=knobs,
            )
            if context.policy == "random":
                value = p
            else:
                value = campaign.bid_micros * p if campaign.pricing == "cpc" else campaign.bid_micros / 1000.0
            candidates.append(_Candidate(campaign, creative, p, value, relevance, lift))
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
            choices=choices, policy=context.policy, full=context.explain,
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
    )
    return decision


def _reason(cand: _Candidate, interests: Interests | None, failed: bool) -> str:
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
    parts.append(f"expected click rate {cand.p_click:.2%}")
    return "; ".join(parts)


def _explanation(
    *,
    interests: Interests | None,
    failed: bool,
    candidates: Sequence[_Candidate],
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
