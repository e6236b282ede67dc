"""Kept decision explanations: a sampled decision's explanation is stored for the dashboard and
trimmed to ``ADS["EXPLAIN_KEEP"]`` rows.
"""

from __future__ import annotations

import logging
from typing import Any

from adsite.ads.conf import ads_setting
from adsite.ads.models import DecisionExplanation

logger = logging.getLogger(__name__)


def explanation_keep(*, decision: Any) -> None:
    """Keep one decision's explanation; the table is trimmed to ``EXPLAIN_KEEP`` rows now and then."""
    if decision.explanation is None:
        return
    try:
        row = DecisionExplanation.objects.create(
            decision_id=decision.decision_id, user_id=decision.user_id[:64], explanation=decision.explanation
        )
        keep = int(ads_setting("EXPLAIN_KEEP"))
        # Trim every so many rows (deterministically, by id): one indexed delete, not one per insert;
        # the table never holds more than about keep + keep/10 rows.
        if row.pk % max(1, min(100, keep // 10 or 1)) == 0:
            cutoff = DecisionExplanation.objects.order_by("-id").values_list("id", flat=True)[keep : keep + 1]
            first_dropped = list(cutoff)
            if first_dropped:
                DecisionExplanation.objects.filter(id__lte=first_dropped[0]).delete()
    except Exception:  # an explanation must never fail a decision
        logger.exception("ads.explanation_keep_failed")
