"""Named ad placements on the site's pages, and the one hook that fills them.

Promises: every page type lists its placements in ``PAGE_PLACEMENTS``; views call
``placements_fill`` once per page (one batch for all the page's slots, so an ad decision can be made
for the page as a whole) and templates render each slot with ``{% ad_slot "name" %}`` through
``site/_ad_slot.html``. Until ad selection exists every slot shows a house ad. The ads app takes
over by answering ``signals.placements_requested`` (a receiver connected in its ``apps.py``, returning
``Mapping[str, SlotAd | None]``); a slot the receiver leaves empty, or any error in it, falls back to
the house ad so a page never fails over an ad.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from django.http import HttpRequest

from adsite.content.signals import placements_requested

logger = logging.getLogger(__name__)

HOUSE_CAMPAIGN_ID = "house"


@dataclass(frozen=True, slots=True)
class SlotAd:
    """What one slot shows. ``href`` is what a click follows (a signed click URL once ads exist)."""

    placement: str
    creative_id: str
    campaign_id: str
    headline: str
    body: str
    cta: str
    href: str
    sponsor: str = "The Bellwether"
    impression_url: str = ""
    # the signed serve id the tracker's ad_impression names (ad.serve_id): what makes it count
    serve_id: str = ""
    house: bool = True
    # filled by the ads app: the creative's image, its HTML (shown only in a sandboxed iframe), and
    # why it was chosen (a title on the label)
    image_url: str = ""
    html: str = ""
    reason: str = ""


PLACEMENTS: dict[str, str] = {
    "leaderboard": "Top of every page, under the header",
    "sidebar": "Beside the article list or the article body",
    "in_article": "Between paragraphs of an article",
    "footer": "Above the footer of every page",
}

PAGE_PLACEMENTS: dict[str, tuple[str, ...]] = {
    "home": ("leaderboard", "sidebar", "footer"),
    "category": ("leaderboard", "sidebar", "footer"),
    "article": ("leaderboard", "sidebar", "in_article", "footer"),
    "about": ("leaderboard", "footer"),
}

HOUSE_ADS: dict[str, SlotAd] = {
    "leaderboard": SlotAd(
        placement="leaderboard",
        creative_id="house-advertise",
        campaign_id=HOUSE_CAMPAIGN_ID,
        headline="Reach readers who care about what they read",
        body="Advertise with The Bellwether: thirty sections, one attentive audience, no tracking sold on.",
        cta="See our media kit",
        href="/about/#advertise",
    ),
    "sidebar": SlotAd(
        placement="sidebar",
        creative_id="house-newsletter",
        campaign_id=HOUSE_CAMPAIGN_ID,
        headline="The Sunday Edition",
        body="The week's best stories from every section, in your inbox once a week. Free, and easy to leave.",
        cta="Get the newsletter",
        href="/about/#newsletter",
    ),
    "in_article": SlotAd(
        placement="in_article",
        creative_id="house-membership",
        campaign_id=HOUSE_CAMPAIGN_ID,
        headline="Independent journalism needs readers like you",
        body="Members get early access to long reads and a say in what we cover next.",
        cta="Become a member",
        href="/about/#membership",
    ),
    "footer": SlotAd(
        placement="footer",
        creative_id="house-events",
        campaign_id=HOUSE_CAMPAIGN_ID,
        headline="Bellwether Live: conversations with our writers",
        body="Monthly evenings in cities across Europe, and online for everyone else.",
        cta="See upcoming events",
        href="/about/#events",
    ),
}

def house_ad(*, placement: str) -> SlotAd:
    """The house ad for a placement (the newsletter promo for any placement without its own)."""
    return HOUSE_ADS.get(placement) or replace(HOUSE_ADS["sidebar"], placement=placement)


def placements_fill(
    *, request: HttpRequest, placements: Sequence[str], categories: Sequence[str] = ()
) -> dict[str, SlotAd]:
    """The ad for each named placement of one page; house ads wherever nothing else is chosen."""
    chosen: Mapping[str, SlotAd | None] = {}
    # an ad must never take the page down with it: a failing receiver is logged, its slots get house ads
    answers = placements_requested.send_robust(
        sender=placements_fill, request=request, placements=list(placements), categories=list(categories)
    )
    answer = answers[0][1] if answers else None  # the first receiver answers for the page
    if isinstance(answer, Exception):
        logger.error(
            "content.placements_provider_failed %r", answer, exc_info=answer, extra={"placements": list(placements)}
        )
    elif answer is not None:
        chosen = answer
    return {name: chosen.get(name) or house_ad(placement=name) for name in placements}
