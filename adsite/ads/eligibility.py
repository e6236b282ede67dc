"""Which campaigns may run for one decision: dates, targeting, budgets, frequency caps, pacing.

Each check answers ``None`` (eligible) or the reason the campaign sits out; the reasons are what a
decision's explanation and the ``ads_campaign_filtered_total`` metric report. The counters come from
one ledger snapshot; the ledger's reservation checks budget and caps again, atomically.
"""

from __future__ import annotations

from adsite.ads.accounting import Snapshot
from adsite.ads.catalog import CampaignView
from adsite.ads.scoring import Knobs

# filter reasons (what the explanation reports for campaigns that were not candidates)
OUT_OF_DATES = "out_of_dates"
UNTARGETED = "untargeted"
OUT_OF_BUDGET = "out_of_budget"
CAPPED = "capped"
PACED = "paced"
NO_CREATIVE = "no_fitting_creative"
PREDICTION_FAILED = "prediction_failed"
# the counters (budget, caps) cannot be read or reserved: nothing paid may run, the house ad does
LEDGER_UNAVAILABLE = "ledger_unavailable"


def pacing_allows(campaign: CampaignView, spent_today: int, now: float, knobs: Knobs) -> bool:
    """Even daily spend: today's spend may not run ahead of the elapsed share of the day (+ slack)."""
    if not knobs.pacing or campaign.tier == "house" or campaign.daily_budget_micros <= 0:
        return True
    elapsed = (now % 86400) / 86400
    allowed = campaign.daily_budget_micros * min(1.0, elapsed + knobs.pacing_slack)
    return spent_today < allowed


def prefilter(campaign: CampaignView, *, now: float, device: str, hour: int, house_only: bool) -> str | None:
    """The checks that need no counters (dates, device, hour, creatives; house only after a failed prediction)."""
    if house_only and campaign.tier != "house":
        return PREDICTION_FAILED
    if campaign.starts_ts > now or campaign.ends_ts <= now:
        return OUT_OF_DATES
    if (campaign.devices and device not in campaign.devices) or (campaign.hours and hour not in campaign.hours):
        return UNTARGETED
    if not campaign.creatives:
        return NO_CREATIVE
    return None


def counters_filter(campaign: CampaignView, snap: Snapshot, now: float, knobs: Knobs) -> str | None:
    """The checks on the ledger's counters: budget left (total, today), the visitor's caps, pacing."""
    c = campaign.id
    if snap.spend_total.get(c, 0) >= campaign.total_budget_micros or snap.spend_today.get(c, 0) >= campaign.daily_budget_micros:
        return OUT_OF_BUDGET
    if (campaign.cap_per_hour and snap.user_hour.get(c, 0) >= campaign.cap_per_hour) or (
        campaign.cap_per_day and snap.user_day.get(c, 0) >= campaign.cap_per_day
    ):
        return CAPPED
    if not pacing_allows(campaign, snap.spend_today.get(c, 0), now, knobs):
        return PACED
    return None
