"""Real-time feedback: a click on an ad updates the visitor's features in the same request.

The click is offered to tracking as an ``ad_click`` event (source ``server``) carrying the campaign's
categories, so inference's online features see it at once (tracking hands accepted events to
``inference.api.events_observe``). Served impressions update the creative's statistics in the
ledger at decision time, clicks at click time, viewable impressions when the tracker reports them.
"""

from __future__ import annotations

import logging
import uuid

from django.http import HttpRequest
from django.utils import timezone

from adsite.ads.services.billing import ClickOutcome
from tracking import api as tracking_api

logger = logging.getLogger(__name__)


def click_event_record(*, request: HttpRequest, outcome: ClickOutcome) -> None:
    context = tracking_api.context_from_request(request=request, source="server")
    event = {
        "event_id": str(uuid.uuid4()),
        "type": "ad_click",
        "user_id": outcome.user_id,
        "ts": int(timezone.now().timestamp() * 1000),
        "url": outcome.landing_url[:2048],
        "categories": list(outcome.categories)[:20],
        "ad": {
            "creative_id": str(outcome.creative_id),
            "campaign_id": str(outcome.campaign_id),
            "placement": outcome.placement,
        },
        "properties": {"via": "click_redirect"},
    }
    try:
        tracking_api.events_ingest(events=[event], context=context)
    except Exception:  # the visitor still goes where they clicked
        logger.exception("ads.click_event_failed")
