"""The ads part of deleting a visitor's data."""

from __future__ import annotations

import logging

from adsite.ads.models import AdClick, DecisionExplanation

logger = logging.getLogger(__name__)


def user_ads_forget(user_id: str) -> None:
    """The ads part of deleting a visitor's data (``tracking.signals.visitor_deleted``).

    Kept decision explanations go; click records stay for billing but no longer name the visitor.
    """
    DecisionExplanation.objects.filter(user_id=user_id).delete()
    AdClick.objects.filter(user_id=user_id).update(user_id="")
