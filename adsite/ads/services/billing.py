"""Clicks and viewable impressions: the writes that move money or delivery statistics.

``click_record`` bills a click at most once and only when it is valid (``adsite.ads.integrity``: a
genuine, fresh, unused token clicked by the visitor it was served to, not a bot); every request to
``/c/<token>`` with a genuine token is recorded (``AdClick``) with its outcome or the reason it was
refused. ``impression_view_record`` (``/i/<token>``) and ``ad_events_accept`` (the tracker's
``ad_impression`` events, which must name a serve id the server issued) count viewable impressions,
once per served impression.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from adsite.ads import integrity
from adsite.ads.accounting import (
    BILLED,
    FREE,
    REPLAYED,
    ClickChargeUnknown,
    ClickRowOwed,
    LedgerUnavailable,
    ledger,
)
from adsite.ads.catalog import catalog_current
from adsite.ads.conf import ads_setting
from adsite.ads.edge import edge_count, edge_metric
from adsite.ads.integrity import Visitor, invalid_record
from adsite.ads.models import AdClick, Creative
from adsite.ads.tokens import EDGE, EXPIRED, FORGED, VIEW_SALT, serve_id_read, token_read

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


def click_record(*, token: str, visitor: Visitor, now: float | None = None) -> ClickOutcome:
    """Record one click request; bill it only when it is valid (``adsite.ads.integrity``): a genuine,
    fresh, unused token, clicked by the visitor it was served to, not a bot (CPC only).

    A token that is not genuine names nothing: it is counted (``unknown_serve``, campaign 0) and writes
    no row. Every other request is kept as an ``AdClick`` row whose outcome is billed, free or the reason.
    """
    now = time.time() if now is None else now
    max_age = int(ads_setting("CLICK_MAX_AGE_S"))
    status, ad = token_read(token, max_age_s=max_age)
    if ad is None:
        invalid_record(kind=integrity.CLICK, reason=integrity.UNKNOWN_SERVE, campaign_id=None, now=now)
        return ClickOutcome(str(AdClick.Outcome.UNKNOWN_SERVE), "", None, None, "", "", ())
    catalog = catalog_current()
    creative = catalog.creatives_by_id.get(ad.creative_id)
    campaign = catalog.campaigns_by_id.get(creative.campaign_id) if creative else None
    if creative is None:
        # paused or finished since it was served: its landing URL is still its own
        landing = Creative.objects.filter(id=ad.creative_id).values_list("landing_url", flat=True).first() or ""
    else:
        landing = creative.landing_url
    reason = None
    if visitor.is_bot:
        reason = integrity.BOT
    elif status == EXPIRED:
        reason = integrity.EXPIRED
    elif not integrity.served_to(ad, visitor):
        reason = integrity.WRONG_VISITOR
    outcome = AdClick.Outcome.FREE
    price = 0
    row = {"token_id": ad.serve_id, "creative_id": ad.creative_id, "campaign_id": ad.campaign_id,
           "placement": ad.placement, "user_id": ad.user_id}
    if reason is None and creative is not None and campaign is not None and ad.campaign_id == campaign.id:
        # A CPM campaign pays for impressions; its clicks are counted, never charged.
        click_price = campaign.price_micros if campaign.pricing == "cpc" else 0
        # The row first, the charge second: a click is billed only once its row exists, so spend and the
        # click rows agree even while the database is down (then the click is not billed, nor recorded).
        try:
            click = AdClick.objects.create(outcome=AdClick.Outcome.FREE, price_micros=0, **row)
        except DatabaseError as exc:
            logger.warning("ads.click_not_billed database unavailable (%s)", type(exc).__name__,
                           extra={"creative_id": creative.id})
            return _click_outcome(str(AdClick.Outcome.FREE), landing, ad, campaign)
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
                click_id=click.pk,
                repeat=ad.repeat,
            )
        except ClickChargeUnknown:
            # the charge may have run (its answer was lost): the row says so, with the price it would cost,
            # until ``click_rows_settle`` asks the ledger what happened
            logger.warning("ads.click_charge_unknown click=%s", click.pk, extra={"creative_id": creative.id})
            outcome, price = AdClick.Outcome.UNSETTLED, click_price
            result = ""  # neither a replay nor billed (yet)
        except LedgerUnavailable:
            # replay and budget cannot be checked: the visitor still reaches the landing page and the
            # click is kept, recorded as not billed (never charged without the ledger's check)
            logger.warning("ads.click_not_billed ledger unavailable", extra={"creative_id": creative.id})
            result = FREE
        if result == REPLAYED:
            outcome = AdClick.Outcome.REPLAY
            invalid_record(kind=integrity.CLICK, reason=integrity.REPLAY, campaign_id=ad.campaign_id, now=now)
        elif result == BILLED:
            outcome, price = AdClick.Outcome.BILLED, click_price  # what the ledger charged
        if ad.origin == EDGE and outcome != AdClick.Outcome.REPLAY:  # chosen on a device: its aggregate
            edge_count({edge_metric(campaign_id=ad.campaign_id, creative_id=ad.creative_id, metric="clicks"): 1}, now=now)
        if outcome != AdClick.Outcome.FREE:
            try:
                AdClick.objects.filter(pk=click.pk).update(outcome=outcome, price_micros=price)
            except DatabaseError as exc:  # the database went away within this request, after the charge
                if outcome == AdClick.Outcome.UNSETTLED:  # Redis and the database both failed this request
                    logger.error("ads.click_charge_unknown click=%s price_micros=%s: row not marked (%s)",
                                 click.pk, price, type(exc).__name__)
                else:
                    _click_row_owe(ClickRowOwed(click.pk, str(outcome), price), exc)
            else:
                _click_rows_settle_some()
        logger.info("ads.click", extra={"outcome": outcome, "creative_id": ad.creative_id})
        return _click_outcome(str(outcome), landing, ad, campaign)
    if reason is not None:
        outcome = AdClick.Outcome(reason)
        invalid_record(kind=integrity.CLICK, reason=reason, campaign_id=ad.campaign_id, now=now)
    try:
        AdClick.objects.create(outcome=outcome, price_micros=price, **row)
    except DatabaseError as exc:  # nothing was charged: the visitor still reaches the landing page
        logger.warning("ads.click_not_recorded database unavailable (%s)", type(exc).__name__)
    logger.info("ads.click", extra={"outcome": outcome, "creative_id": ad.creative_id})
    return _click_outcome(str(outcome), landing, ad, campaign)


def _click_row_owe(owed: ClickRowOwed, exc: DatabaseError) -> None:
    """The ledger charged a click whose row the database would not take: the ledger keeps what the row
    must say until ``click_rows_settle`` writes it (the click rows catch up with the spend)."""
    try:
        ledger().click_row_owe(owed=owed)
    except LedgerUnavailable:
        logger.error("ads.click_row_not_updated click=%s outcome=%s price_micros=%s (%s; ledger unavailable)",
                     owed.click_id, owed.outcome, owed.price_micros, type(exc).__name__)
        return
    logger.warning("ads.click_row_owed click=%s outcome=%s (%s): written when the database is back",
                   owed.click_id, owed.outcome, type(exc).__name__)


def click_rows_settle(*, limit: int = 500, unsettled_after_s: float | None = None) -> int:
    """Bring the click rows level with the ledger (the beat's task); how many rows were written. Two kinds:

    - rows the ledger billed while the database would not take them (the ledger keeps what they owe);
    - rows whose charge's answer was lost (``unsettled``, older than ``unsettled_after_s``, by default
      ``ADS["CLICK_SETTLE_AFTER_S"]``): the ledger's record of the token says billed (with the price it
      charged) or not; a token it never charged is voided, so the lost request cannot charge it later.

    Safe to run twice and concurrently: each write sets the row's outcome and price outright. Raises the
    database's or the ledger's error when either is unreachable (nothing is forgotten)."""
    return _owed_rows_write(limit=limit) + _unsettled_rows_settle(limit=limit, after_s=unsettled_after_s)


def _owed_rows_write(*, limit: int) -> int:
    owed = ledger().click_rows_owed(limit=limit)
    if not owed:
        return 0
    with transaction.atomic():
        for row in owed:
            AdClick.objects.filter(pk=row.click_id).update(outcome=row.outcome, price_micros=row.price_micros)
    ledger().click_rows_settled(click_ids=[row.click_id for row in owed])
    logger.info("ads.click_rows_settled %s", len(owed))
    return len(owed)


def _unsettled_rows_settle(*, limit: int, after_s: float | None) -> int:
    wait_s = float(ads_setting("CLICK_SETTLE_AFTER_S")) if after_s is None else after_s
    cutoff = timezone.now() - timedelta(seconds=wait_s)
    unsettled = AdClick.objects.filter(outcome=AdClick.Outcome.UNSETTLED, created_at__lte=cutoff).values_list(
        "pk", "token_id", "campaign_id")[:limit]
    ttl_s = int(ads_setting("CLICK_MAX_AGE_S")) + 3600
    written = 0
    for click_id, token_id, campaign_id in unsettled:
        result, price = ledger().click_charge_settle(
            token_id=token_id, campaign_id=int(campaign_id or 0), click_id=click_id, token_ttl_s=ttl_s)
        outcome = AdClick.Outcome.BILLED if result == BILLED else AdClick.Outcome.FREE
        AdClick.objects.filter(pk=click_id, outcome=AdClick.Outcome.UNSETTLED).update(
            outcome=outcome, price_micros=price if result == BILLED else 0)
        logger.info("ads.click_charge_settled click=%s outcome=%s", click_id, outcome)
        written += 1
    return written


def _click_rows_settle_some() -> None:
    """After a click reached the database: write what earlier clicks owe (embedded mode has no beat). The
    unsettled rows are the beat's alone: only the Redis ledger leaves them, and it runs beside a beat."""
    try:
        _owed_rows_write(limit=50)
    except (DatabaseError, LedgerUnavailable) as exc:
        logger.warning("ads.click_rows_waiting (%s)", type(exc).__name__)


def _click_outcome(outcome: str, landing: str, ad: Any, campaign: Any) -> ClickOutcome:
    return ClickOutcome(
        outcome=outcome,
        landing_url=landing,
        creative_id=ad.creative_id,
        campaign_id=ad.campaign_id,
        user_id=ad.user_id,
        placement=ad.placement,
        categories=campaign.categories if campaign else (),
    )


def _viewable_count(*, serve_id: str, creative_id: int, campaign_id: int) -> str | None:
    """Count a served impression viewable, once (``/i/`` and events share it); ``replay`` when it was
    counted before, None otherwise (also when the ledger is unreachable: not counted, not refused)."""
    try:
        counted = ledger().viewable_count(
            serve_id=serve_id, creative_id=creative_id, campaign_id=campaign_id,
            ttl_s=int(ads_setting("CLICK_MAX_AGE_S")) + 3600, now=time.time(),
        )
    except LedgerUnavailable:
        logger.warning("ads.viewable_not_counted ledger unavailable", extra={"creative_id": creative_id})
        return None
    return None if counted else integrity.REPLAY


def impression_view_record(*, token: str, visitor: Visitor) -> str:
    """A viewable impression reported through the signed impression URL: ``"viewable"`` when counted
    (once per served impression, by the visitor it was served to), else the reason it was refused."""
    status, ad = token_read(token, max_age_s=int(ads_setting("CLICK_MAX_AGE_S")), salt=VIEW_SALT)
    if ad is None:
        reason = integrity.UNKNOWN_SERVE
    elif visitor.is_bot:
        reason = integrity.BOT
    elif status == EXPIRED:
        reason = integrity.EXPIRED
    elif not integrity.served_to(ad, visitor):
        reason = integrity.WRONG_VISITOR
    else:
        replay = _viewable_count(serve_id=ad.serve_id, creative_id=ad.creative_id, campaign_id=ad.campaign_id)
        if replay is None:
            if ad.origin == EDGE:  # chosen on a device: its aggregate counters (``adsite.ads.edge``)
                edge_count({edge_metric(campaign_id=ad.campaign_id, creative_id=ad.creative_id, metric="viewable"): 1})
            return "viewable"
        reason = replay
    invalid_record(kind=integrity.IMPRESSION, reason=reason, campaign_id=ad.campaign_id if ad else None)
    return reason


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def ad_events_accept(records: Sequence[Any]) -> None:
    """Tracking's hook for accepted, non-bot ad events: an ``ad_impression`` counts as viewable only
    when its ``ad.serve_id`` is one this server issued for that creative and visitor, fresh, and not
    counted before (by ``/i/`` or another event); anything else is invalid traffic, never a counter.

    Clicks are billed and counted only through ``/c/<token>``; an ``ad_click`` event from the tracker
    (house ads, or a page without click links) changes no money and no statistics.
    """
    max_age = int(ads_setting("CLICK_MAX_AGE_S"))
    catalog = None
    for record in records:
        if getattr(record, "type", "") != "ad_impression":
            continue
        creative_id = _int_or_none(record.creative_id)
        if creative_id is None:
            continue  # the built-in house ads have non-numeric ids and are nobody's inventory
        catalog = catalog or catalog_current()
        creative = catalog.creatives_by_id.get(creative_id)
        campaign_id = creative.campaign_id if creative is not None else None
        status = serve_id_read(
            getattr(record, "serve_id", "") or "", creative_id=creative_id, user_id=record.user_id, max_age_s=max_age
        )
        if creative is None or status == FORGED:
            reason = integrity.UNKNOWN_SERVE
        elif status == EXPIRED:
            reason = integrity.EXPIRED
        else:
            assert campaign_id is not None
            replay = _viewable_count(serve_id=record.serve_id, creative_id=creative_id, campaign_id=campaign_id)
            if replay is None:
                continue
            reason = replay
        invalid_record(kind=integrity.IMPRESSION, reason=reason, campaign_id=campaign_id)
