"""The ads part of deleting a visitor's data, and the retention of click rows."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from adsite.ads.accounting import LedgerUnavailable, ledger
from adsite.ads.conf import ads_setting
from adsite.ads.models import AdClick, DecisionExplanation
from adsite.ads.services.reservations import reservations_void

logger = logging.getLogger(__name__)


def user_ads_forget(user_id: str) -> None:
    """The ads part of deleting a visitor's data (``tracking.signals.visitor_deleted``).

    Kept decision explanations and the visitor's click rows go, and so do their frequency counters; what
    an advertiser is invoiced from (the ledger's report counters) names no visitor and stays. Their kept
    lost reservations are voided first (``services.reservations``: the money goes back) and go too.
    """
    DecisionExplanation.objects.filter(user_id=user_id).delete()
    AdClick.objects.filter(user_id=user_id).delete()
    try:
        reservations_void(user_id=user_id, limit=100_000)
        ledger().visitor_forget(user_id=user_id)
    except LedgerUnavailable:
        logger.warning("ads.visitor_forget_failed ledger unavailable")
        raise


def clicks_purge(*, now: datetime | None = None) -> int:
    """Delete ``AdClick`` rows older than ``ADS["CLICK_RETENTION_DAYS"]`` (in batches); the number deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=float(ads_setting("CLICK_RETENTION_DAYS")))
    deleted = 0
    while True:
        ids = list(AdClick.objects.filter(created_at__lt=cutoff).order_by("id").values_list("id", flat=True)[:10_000])
        if not ids:
            return deleted
        deleted += AdClick.objects.filter(id__in=ids).delete()[0]
