"""How a candidate ad is scored: the visitor's interest lift, the creative's learned quality and the
wear-out of an ad the visitor has already seen today.

``SelectionPolicy`` is the seam: ``ads_select`` asks the decision's policy for each creative's click
probability and expected value. The site runs ``ADSITE_POLICY`` (a Thompson sample of the creative's
quality x the visitor's interest lift); other policies (the simulation's baselines) are objects passed
in through ``DecisionContext.policy``, never a switch inside this module.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from adsite.ads.accounting import REPEAT_BUCKETS, Snapshot
from adsite.ads.catalog import CampaignView, CreativeView
from adsite.ads.conf import ads_setting

EXPOSURE_UNIT = 1_000_000  # the ledger keeps the extra exposure (summed lift - 1) in millionths


@dataclass(frozen=True, slots=True)
class Knobs:
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
    wear_out: bool
    wear_out_prior_clicks: float

    @classmethod
    def read(cls) -> Knobs:
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
            wear_out=bool(ads_setting("WEAR_OUT")),
            wear_out_prior_clicks=float(ads_setting("WEAR_OUT_PRIOR_CLICKS")),
        )


def weighted_score(campaign: CampaignView, scores: Mapping[str, float]) -> float:
    """The campaign's interest weights applied to interest shares (a category missing scores 0)."""
    total_weight = sum(w for _, w in campaign.interests)
    if not total_weight:
        return 0.0
    return sum(w * scores.get(slug, 0.0) for slug, w in campaign.interests) / total_weight


def interest_lift(relevance: float, base: float, knobs: Knobs) -> float:
    """The visitor's interest over the population's, smoothed (a category nobody scores is neutral),
    raised to ``INTEREST_LIFT_POWER`` and bounded by ``INTEREST_LIFT_MAX`` both ways."""
    ratio = float(((relevance + knobs.smoothing) / (base + knobs.smoothing)) ** knobs.lift_power)
    return min(knobs.lift_max, max(1.0 / knobs.lift_max, ratio))


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
    campaigns: Sequence[CampaignView], snap: Snapshot, knobs: Knobs | None = None
) -> dict[int, Quality]:
    """Each creative's quality posterior, learned from clicks relative to what its audience predicted.

    Model: clicks_i ~ Poisson(q_i x exposure_i), exposure_i = the summed interest lifts of its
    impressions, so the interest the visitors brought is accounted for and q_i is the creative's own
    appeal. Prior, hierarchical: the pooled rate of all non-house creatives (over the CTR prior,
    ``CTR_PRIOR_CLICKS`` / ``CTR_PRIOR_IMPRESSIONS``), then (``QUALITY_POOL = "campaign"``) the
    campaign's pooled rate around it; each level weighs ``QUALITY_PRIOR_SHAPE`` clicks. Posterior:
    Gamma(shape + clicks_i, shape / pooled + exposure_i), conjugate, so one pass over the snapshot.
    """
    knobs = knobs or Knobs.read()
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


def wear_out_factors(snap: Snapshot, knobs: Knobs) -> tuple[float, ...]:
    """How much less likely a repeated impression is clicked than a visitor's first of the campaign today, per
    repeat bucket (``accounting.repeat_bucket``; bucket 0, a first impression, is 1).

    Learned from the ledger's repeat statistics: per bucket, the clicks observed over the clicks the click
    model expected for those impressions (quality x interest lift, before wear-out), so who was shown what
    is accounted for as in ``quality_posteriors``. Each bucket's ratio is taken relative to a first
    impression's, with a prior of no wear-out worth ``WEAR_OUT_PRIOR_CLICKS`` clicks: (clicks + s) /
    (ratio of a first x expected + s). A repeat is never expected to do better than a first (a higher
    ratio is what targeting leaves, visitors who see a campaign again being the ones most interested in it),
    nor better than the bucket before it. All 1 when ``WEAR_OUT`` is off."""
    if not knobs.wear_out:
        return (1.0,) * REPEAT_BUCKETS
    s = knobs.wear_out_prior_clicks
    observed = [float(snap.repeat_clicks.get(b, 0)) for b in range(REPEAT_BUCKETS)]
    expected = [snap.repeat_expected.get(b, 0) / EXPOSURE_UNIT for b in range(REPEAT_BUCKETS)]
    first = (observed[0] + s) / (expected[0] + s)
    factors = [1.0]
    for b in range(1, REPEAT_BUCKETS):
        factors.append(min(factors[-1], (observed[b] + s) / (first * expected[b] + s)))
    return tuple(factors)


@dataclass(frozen=True, slots=True)
class Candidate:
    """What a policy sees of one eligible creative for one visitor."""

    user_id: str
    campaign: CampaignView
    creative: CreativeView
    lift: float  # the visitor's interest lift for the campaign (1: no interest targeting)
    clicks: int  # the creative's counted clicks and impressions (the ledger snapshot)
    impressions: int
    # the wear-out of this visitor's impressions of the campaign today (``wear_out_factors``; 1: a first one)
    wear: float = 1.0


class SelectionPolicy(Protocol):
    """Click probability and expected value of a candidate; ``name`` goes into explanations."""

    name: str
    # whether the decision computes ``quality_posteriors`` for this policy
    reads_quality: bool

    def click_probability(
        self, candidate: Candidate, *, quality: Quality | None, rng: random.Random, knobs: Knobs
    ) -> float: ...

    def value(self, candidate: Candidate, p_click: float) -> float: ...


def bid_value(campaign: CampaignView, p_click: float) -> float:
    """Expected value per impression in micros: CPC bid x click probability, CPM bid / 1000."""
    return campaign.bid_micros * p_click if campaign.pricing == "cpc" else campaign.bid_micros / 1000.0


class ThompsonPolicy:
    """The site's policy: a Thompson sample of the creative's quality x the visitor's interest lift x the
    wear-out of an ad the visitor has already seen today."""

    name = "adsite"
    reads_quality = True

    def click_probability(
        self, candidate: Candidate, *, quality: Quality | None, rng: random.Random, knobs: Knobs
    ) -> float:
        if quality is None:  # not in the snapshot's campaigns: no statistics to learn from
            return rng.random()
        return min(1.0, quality.sample(rng) * candidate.lift * candidate.wear)

    def value(self, candidate: Candidate, p_click: float) -> float:
        return bid_value(candidate.campaign, p_click)


ADSITE_POLICY = ThompsonPolicy()
