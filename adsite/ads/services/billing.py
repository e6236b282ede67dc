"""Clicks and viewable impressions: the writes that move money or delivery statistics.

``click_record`` bills a click at most once and only through a genuine, fresh, unused token; every
request to ``/c/<token>`` is recorded (``AdClick``) whatever its outcome. ``ad_events_accept`` counts
the viewable impressions among the ad events tracking accepted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from adsite.ads.catalog import catalog_current
from adsite.ads.conf import ads_setting
from adsite.ads.ledger import BILLED, FREE, REPLAYED, LedgerUnavailable, ledger
from adsite.ads.models import AdClick, Creative
from adsite.ads.tokens import EXPIRED, FORGED, VALID, VIEW_SALT, token_read

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClickOutcome:
    outcome: str  # AdClick.Outcome value
    landing_url: str  # "" when the token names no known creative
    creative_id: int | None
    campaign_id: int | None
    user_id: str
    placement: str
    categories: tuple[str, ...]


def click_record(*, token: str, now: float | None = None) -> ClickOutcome:
    """Record one click request; bill it when the token is genuine, fresh and unused (CPC only)."""
    now = time.time() if now is None else now
    max_age = int(ads_setting("CLICK_MAX_AGE_S"))
    status, ad = token_read(token, max_age_s=max_age)
    catalog = catalog_current()
    creative = catalog.creatives_by_id.get(ad.creative_id) if ad else None
    campaign = catalog.campaigns_by_id.get(creative.campaign_id) if creative else None
    if ad is not None and creative is None:
        # paused or finished since it was served: its landing URL is still its own
        row = Creative.objects.filter(id=ad.creative_id).values_list("landing_url", flat=True).first()
        landing = row or ""
    else:
        landing = creative.landing_url if creative else ""
    outcome = {FORGED: AdClick.Outcome.FORGED, EXPIRED: AdClick.Outcome.EXPIRED}.get(
        status, AdClick.Outcome.FREE
    )
    price = 0
    if (
        status == VALID
        and ad is not None
        and creative is not None
        and campaign is not None
        and ad.campaign_id == campaign.id
    ):
        # A CPM campaign pays for impressions; its clicks are counted, never charged.
        click_price = campaign.price_micros if campaign.pricing == "cpc" else 0
        try:
            result = ledger().click_charge(
                token_id=ad.serve_id,
                campaign_id=campaign.id,
                creative_id=creative.id,
                price_micros=click_price,
                daily_budget_micros=campaign.daily_budget_micros,
                total_budget_micros=campaign.total_budget_micros,
                now=now,
                token_ttl_s=max_age + 3600,
            )
        except LedgerUnavailable:
            # replay and budget cannot be checked: the visitor still reaches the landing page and the
            # click is kept, recorded as not billed (never charged without the ledger's check)
            logger.warning("ads.click_not_billed ledger unavailable", extra={"creative_id": creative.id})
            result = FREE
        if result == REPLAYED:
            outcome = AdClick.Outcome.REPLAYED
        elif result == BILLED:
            outcome = AdClick.Outcome.BILLED
            price = click_price  # what the ledger charged: the click record and the spend agree
    AdClick.objects.create(
        outcome=outcome,
        token_id=ad.serve_id if ad else "",
        creative_id=ad.creative_id if ad else None,
        campaign_id=ad.campaign_id if ad else None,
        placement=ad.placement if ad else "",
        user_id=ad.user_id if ad else "",
        price_micros=price,
    )
    logger.info("ads.click", extra={"outcome": outcome, "creative_id": ad.creative_id if ad else None})
    return ClickOutcome(
        outcome=str(outcome),
        landing_url=landing,
        creative_id=ad.creative_id if ad else None,
        campaign_id=ad.campaign_id if ad else None,
        user_id=ad.user_id if ad else "",
        placement=ad.placement if ad else "",
        categories=campaign.categories if campaign else (),
    )


def impression_view_record(*, token: str) -> bool:
    """A viewable impression reported through the signed impression URL (once per served impression)."""
    status, ad = token_read(token, max_age_s=int(ads_setting("CLICK_MAX_AGE_S")), salt=VIEW_SALT)
    if status != VALID or ad is None:
        return False
    if not cache.add(f"ads:viewed:{ad.serve_id}", 1, timeout=int(ads_setting("CLICK_MAX_AGE_S"))):
        return False
    try:
        ledger().viewable_add(creative_ids=[ad.creative_id])
    except LedgerUnavailable:
        logger.warning("ads.viewable_not_counted ledger unavailable", extra={"creative_id": ad.creative_id})
        return False
    return True


def ad_events_accept(records: Sequence[Any]) -> None:
    """Tracking's hook for accepted, non-bot ad events: viewable impressions count for the creative.

    Clicks are billed and counted only through ``/c/<token>``; an ``ad_click`` event from the tracker
    (house ads, or a page without click links) changes no money and no statistics.
    """
    viewed = []
    for record in records:
        if getattr(record, "type", "") == "ad_impression":
            try:
                viewed.append(int(record.creative_id))
            except (TypeError, ValueError):
                continue  # the built-in house ads have non-numeric ids
    if viewed:
        try:
            ledger().viewable_add(creative_ids=viewed)
        except LedgerUnavailable:  # the events themselves are stored; only the creatives' view counts wait
            logger.warning("ads.viewable_not_counted ledger unavailable", extra={"creatives": len(viewed)})
