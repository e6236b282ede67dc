"""Staff edits of campaigns and creatives (the dashboard; the admin writes through its own forms):
validated like the admin (``Model.full_clean``), and the catalog rebuilt so decisions follow at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from adsite.ads.catalog import catalog_invalidate
from adsite.ads.models import Campaign, Creative

logger = logging.getLogger(__name__)


# what staff may set (the dashboard's forms show exactly these)
CAMPAIGN_FIELDS = (
    "advertiser",
    "name",
    "status",
    "tier",
    "starts_at",
    "ends_at",
    "pricing",
    "bid",
    "daily_budget",
    "total_budget",
    "interests",
    "interest_min_score",
    "devices",
    "hours",
    "cap_per_hour",
    "cap_per_day",
)
CREATIVE_FIELDS = (
    "campaign",
    "name",
    "kind",
    "size",
    "image",
    "headline",
    "body",
    "cta",
    "landing_url",
    "html",
    "active",
)


def _save_validated(row: Campaign | Creative, fields: dict[str, Any], allowed: Sequence[str]) -> None:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    for name, value in fields.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    # now (this thread's next decision) and after commit (a rebuild meanwhile may have read the old row)
    catalog_invalidate()
    transaction.on_commit(catalog_invalidate)


@transaction.atomic
def campaign_create(*, fields: dict[str, Any]) -> Campaign:
    """A new campaign (validated like the admin does); decided on from the next catalog build."""
    campaign = Campaign()
    _save_validated(campaign, fields, CAMPAIGN_FIELDS)
    return campaign


@transaction.atomic
def campaign_update(*, campaign_id: int, fields: dict[str, Any]) -> Campaign:
    campaign = Campaign.objects.select_for_update().get(id=campaign_id)
    _save_validated(campaign, fields, CAMPAIGN_FIELDS)
    return campaign


def campaign_status_set(*, campaign_id: int, status: str) -> Campaign:
    """Pause or resume a campaign: a paused one leaves this process's catalog at once (other
    processes within ``CATALOG_SECONDS``), so ``ads_select`` stops choosing it."""
    if status not in Campaign.Status.values:
        raise ValueError(f"unknown campaign status {status!r}")
    return campaign_update(campaign_id=campaign_id, fields={"status": status})


@transaction.atomic
def creative_create(*, fields: dict[str, Any]) -> Creative:
    creative = Creative()
    _save_validated(creative, fields, CREATIVE_FIELDS)
    return creative


@transaction.atomic
def creative_update(*, creative_id: int, fields: dict[str, Any]) -> Creative:
    creative = Creative.objects.select_for_update().get(id=creative_id)
    _save_validated(creative, fields, CREATIVE_FIELDS)
    return creative


def creative_active_set(*, creative_id: int, active: bool) -> Creative:
    """Pause (``active=False``) or resume one creative; its campaign's other creatives keep running."""
    return creative_update(creative_id=creative_id, fields={"active": active})
