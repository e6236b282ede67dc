"""The ads app's receivers of the other apps' signals (connected in ``AdsConfig.ready``). Each one
adapts the signal's arguments and calls one service; no logic lives here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.http import HttpRequest

from adsite.content.placements import SlotAd
from inference.api import EventRecord


def on_ad_events_accepted(sender: Any, *, records: Sequence[EventRecord], **kwargs: Any) -> None:
    """``tracking.signals.ad_events_accepted``: viewable impressions count for their creatives."""
    from adsite.ads.services.billing import ad_events_accept

    ad_events_accept(records)


def on_visitor_deleted(sender: Any, *, user_id: str, **kwargs: Any) -> None:
    """``tracking.signals.visitor_deleted``: kept explanations, click rows and frequency counters go."""
    from adsite.ads.services.privacy import user_ads_forget

    user_ads_forget(user_id)


def on_placements_requested(
    sender: Any, *, request: HttpRequest, placements: Sequence[str], categories: Sequence[str] = (), **kwargs: Any
) -> Mapping[str, SlotAd | None]:
    """``content.signals.placements_requested``: one ad decision for the page's slots."""
    from adsite.ads.delivery import placements_provide

    return placements_provide(request=request, placements=placements, categories=categories)
