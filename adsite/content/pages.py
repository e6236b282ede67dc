"""What every rendered page of the site carries besides its content.

Promises: ``page_context`` records one server-side ``page_view`` per rendered page (through
``tracking.api.page_view_record_server``, which itself honours consent, DNT and GPC) under a fresh
``page_view_id``; the page embeds that id so that ``tracker.js`` sends its own ``page_view`` with the
same ``event_id`` and the two copies dedupe to one event. It also fills the page's ad placements in
one batch and renders the tracker's configuration. A failure to record analytics never fails the page.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.templatetags.static import static

from adsite.content.placements import PAGE_PLACEMENTS, placements_fill
from adsite.content.selectors import category_sections
from tracking import api as tracking_api

logger = logging.getLogger(__name__)

CONSENT_COOKIE = "adsite_consent"
UID_COOKIE = "adsite_uid"
COLLECT_URL = "/collect"
EDGE_MODEL_URL = "/edge/model.json"
EDGE_ADS_URL = "/edge/ads"
EDGE_SERVE_URL = "/edge/ads/serve"


@dataclass(frozen=True, slots=True)
class PageView:
    page_view_id: str
    item_id: str
    categories: tuple[str, ...]

    @property
    def categories_attr(self) -> str:
        """Space-separated slugs, for a ``data-categories`` attribute."""
        return " ".join(self.categories)


def _server_recorder() -> Any:
    """The tracking app's server-side page view recorder (a seam the content tests stub)."""
    return tracking_api.page_view_record_server


def page_view_register(*, request: HttpRequest, item_id: str, categories: Sequence[str]) -> PageView:
    page_view = PageView(page_view_id=str(uuid.uuid4()), item_id=item_id, categories=tuple(categories))
    if tracking_api.edge_mode_for(request):  # the visitor's profile lives on their device: no clickstream
        return page_view
    try:
        _server_recorder()(
            request=request,
            event_id=uuid.UUID(page_view.page_view_id),
            url=request.build_absolute_uri(),
            item_id=item_id,
            categories=list(categories),
        )
    except Exception:  # the page matters more than its analytics; the tracker's copy may still arrive
        logger.exception("content.server_page_view_failed", extra={"item_id": item_id})
    return page_view


def tracker_config(*, request: HttpRequest) -> dict[str, Any]:
    """The configuration ``tracker.js`` reads from the page's JSON block (no inline script)."""
    tracking = getattr(settings, "TRACKING", {})
    return {
        "collectUrl": COLLECT_URL,
        "consentRequired": bool(tracking.get("CONSENT_REQUIRED", False)),
        "consentCookie": CONSENT_COOKIE,
        "uidCookie": UID_COOKIE,
        "pingSeconds": float(tracking.get("TRACKER_PING_SECONDS", 15.0)),
        "flushSeconds": float(tracking.get("TRACKER_FLUSH_SECONDS", 5.0)),
        "batchSize": 20,
        # edge mode: "all" (every visitor) or "private" (visitors sending DNT/GPC) keep their interest
        # profile in the browser (inference's edge.js, the model file below) and send no clickstream
        "edgeMode": tracking_api.edge_mode(),
        "edgeModelUrl": EDGE_MODEL_URL,
        "edgeScriptUrl": static("inference/edge.js"),
        # ...and choose the page's ads among offers made from the page's context (the ads app's script)
        "edgeAdsUrl": EDGE_ADS_URL,
        "edgeServeUrl": EDGE_SERVE_URL,
        "edgeAdsScriptUrl": static("ads/edge-ads.js"),
    }


def page_context(
    *, request: HttpRequest, page_type: str, item_id: str = "", categories: Sequence[str] = ()
) -> dict[str, Any]:
    config = tracker_config(request=request)
    consent = request.COOKIES.get(CONSENT_COOKIE, "")
    return {
        "page_type": page_type,
        "page_view": page_view_register(request=request, item_id=item_id, categories=categories),
        "ad_slots": placements_fill(
            request=request, placements=PAGE_PLACEMENTS[page_type], categories=categories
        ),
        "nav_categories": category_sections(),  # (slug, name) pairs; {% section_links %} renders them
        "tracker_config": config,
        "consent_required": config["consentRequired"],
        "consent_choice_made": consent in ("granted", "denied"),
    }
