"""The event record inference consumes: the contract between tracking (and importers) and inference.

Tracking converts each accepted, non-bot event into an :class:`EventRecord` and hands it over through
``inference.api.events_observe``; the training-set builder and the evaluation read the same records,
so that online and offline features are computed from identical inputs.

Also part of the contract, defined here once for tracking (validation, import) and inference (the
evaluation's file readers): the event types, the form of a category slug, and the rule that turns a
dataset's category label into its slug.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from django.utils.text import slugify

EVENT_TYPES = frozenset({"page_view", "page_ping", "click", "ad_impression", "ad_click", "conversion"})
AD_TYPES = frozenset({"ad_impression", "ad_click"})  # the events that carry an ad
CATEGORY_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
NO_CATEGORY_LABEL = "(no genres listed)"  # MovieLens's way of saying "none"


def category_slugs(labels: Iterable[str]) -> dict[str, str]:
    """Category labels as the slugs events carry (``Sci-Fi`` -> ``sci-fi``), slug -> first label.
    The importer and the evaluation's file readers both use it, so a model trained from a file and
    one trained from imported events name categories alike."""
    slugs: dict[str, str] = {}
    for label in labels:
        label = label.strip()
        if not label or label == NO_CATEGORY_LABEL:
            continue
        slug = _slug(label)
        slugs.setdefault(slug or label, label)
    return slugs


# a file repeats few labels (MovieLens: 20 genres over ~10k movies), and ``slugify`` costs ~2 us a
# call, paid again by every preparing process
@lru_cache(maxsize=10_000)
def _slug(label: str) -> str:
    return label if CATEGORY_SLUG_RE.match(label) else slugify(label)[:100]


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
    # ad events: the ad server's signed id of the served impression (checked by the ads app, not here)
    serve_id: str = ""
    properties: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
