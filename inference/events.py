"""The event record inference consumes: the contract between tracking (and importers) and inference.

Tracking converts each accepted, non-bot event into an :class:`EventRecord` and hands it over through
``inference.api.events_observe``; the training-set builder and the evaluation read the same records,
so that online and offline features are computed from identical inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EventRecord:
    user_id: str
    ts: float  # epoch seconds (the sender's clock, validated to be sane)
    type: str  # page_view, page_ping, click, ad_impression, ad_click, conversion
    categories: tuple[str, ...] = ()
    item_id: str = ""
    session_id: str = ""
    # page_ping: engaged milliseconds since the previous ping
    engaged_ms: int = 0
    # desktop, mobile, tablet, other (from the user agent)
    device: str = "other"
    campaign_id: str = ""
    creative_id: str = ""
    properties: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
