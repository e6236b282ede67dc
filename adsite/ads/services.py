"""Writes of the ads app: the demo seed, clicks, viewable impressions, kept explanations.

``click_record`` bills a click at most once and only through a genuine, fresh, unused token; every
request to ``/c/<token>`` is recorded (``AdClick``) whatever its outcome. ``ad_events_accept`` is the
hook tracking calls with accepted ad events (``TRACKING["AD_EVENT_HOOKS"]``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from adsite.ads.artwork import banner_svg
from adsite.ads.catalog import catalog_current, catalog_invalidate
from adsite.ads.conf import ads_setting
from adsite.ads.ledger import BILLED, FREE, REPLAYED, LedgerUnavailable, ledger
from adsite.ads.models import AdClick, Advertiser, Campaign, Creative, DecisionExplanation, Placement
from adsite.ads.tokens import EXPIRED, FORGED, VALID, VIEW_SALT, token_read

logger = logging.getLogger(__name__)

PLACEMENT_SIZES = {"leaderboard": "728x90", "sidebar": "300x250", "in_article": "300x250", "footer": "728x90"}


# ---- explanations --------------------------------------------------------------------------------


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


# ---- clicks and viewable impressions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClickOutcome:
    outcome: str  # AdClick.Outcome value
    landing_url: str  # "" when the token names no known creative
    creative_id: int | None
    campaign_id: int | None
    user_id: str
    placement: str
    categories: tuple[str, ...]


def click_record(*, token: str, now: float | None = None) -> ClickOutcome:
    """Record one click request; bill it when the token is genuine, fresh and unused (CPC only)."""
    now = time.time() if now is None else now
    max_age = int(ads_setting("CLICK_MAX_AGE_S"))
    status, ad = token_read(token, max_age_s=max_age)
    catalog = catalog_current()
    creative = catalog.creatives_by_id.get(ad.creative_id) if ad else None
    campaign = catalog.campaigns_by_id.get(creative.campaign_id) if creative else None
    if ad is not None and creative is None:
        # paused or finished since it was served: its landing URL is still its own
        row = Creative.objects.filter(id=ad.creative_id).values_list("landing_url", flat=True).first()
        landing = row or ""
    else:
        landing = creative.landing_url if creative else ""
    outcome = {FORGED: AdClick.Outcome.FORGED, EXPIRED: AdClick.Outcome.EXPIRED}.get(status, AdClick.Outcome.FREE)
    price = 0
    if status == VALID and ad is not None and creative is not None and campaign is not None and ad.campaign_id == campaign.id:
        # A CPM campaign pays for impressions; its clicks are counted, never charged.
        click_price = campaign.price_micros if campaign.pricing == "cpc" else 0
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
            )
        except LedgerUnavailable:
            # replay and budget cannot be checked: the visitor still reaches the landing page and the
            # click is kept, recorded as not billed (never charged without the ledger's check)
            logger.warning("ads.click_not_billed ledger unavailable", extra={"creative_id": creative.id})
            result = FREE
        if result == REPLAYED:
            outcome = AdClick.Outcome.REPLAYED
        elif result == BILLED:
            outcome = AdClick.Outcome.BILLED
            price = click_price  # what the ledger charged: the click record and the spend agree
    AdClick.objects.create(
        outcome=outcome,
        token_id=ad.serve_id if ad else "",
        creative_id=ad.creative_id if ad else None,
        campaign_id=ad.campaign_id if ad else None,
        placement=ad.placement if ad else "",
        user_id=ad.user_id if ad else "",
        price_micros=price,
    )
    logger.info("ads.click", extra={"outcome": outcome, "creative_id": ad.creative_id if ad else None})
    return ClickOutcome(
        outcome=str(outcome),
        landing_url=landing,
        creative_id=ad.creative_id if ad else None,
        campaign_id=ad.campaign_id if ad else None,
        user_id=ad.user_id if ad else "",
        placement=ad.placement if ad else "",
        categories=campaign.categories if campaign else (),
    )


def impression_view_record(*, token: str) -> bool:
    """A viewable impression reported through the signed impression URL (once per served impression)."""
    status, ad = token_read(token, max_age_s=int(ads_setting("CLICK_MAX_AGE_S")), salt=VIEW_SALT)
    if status != VALID or ad is None:
        return False
    if not cache.add(f"ads:viewed:{ad.serve_id}", 1, timeout=int(ads_setting("CLICK_MAX_AGE_S"))):
        return False
    try:
        ledger().viewable_add(creative_ids=[ad.creative_id])
    except LedgerUnavailable:
        logger.warning("ads.viewable_not_counted ledger unavailable", extra={"creative_id": ad.creative_id})
        return False
    return True


def ad_events_accept(records: Sequence[Any]) -> None:
    """Tracking's hook for accepted, non-bot ad events: viewable impressions count for the creative.

    Clicks are billed and counted only through ``/c/<token>``; an ``ad_click`` event from the tracker
    (house ads, or a page without click links) changes no money and no statistics.
    """
    viewed = []
    for record in records:
        if getattr(record, "type", "") == "ad_impression":
            try:
                viewed.append(int(record.creative_id))
            except (TypeError, ValueError):
                continue  # the built-in house ads have non-numeric ids
    if viewed:
        try:
            ledger().viewable_add(creative_ids=viewed)
        except LedgerUnavailable:  # the events themselves are stored; only the creatives' view counts wait
            logger.warning("ads.viewable_not_counted ledger unavailable", extra={"creatives": len(viewed)})


# ---- demo seed -----------------------------------------------------------------------------------

ADVERTISERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Northwind Motors", ("automotive", "technology-and-computing")),
    ("Pageturner Books", ("books-and-literature", "education")),
    ("Ledgerline Bank", ("business-and-finance", "personal-finance")),
    ("Brightpath Careers", ("careers", "education")),
    ("Kinfolk Family Club", ("family-and-relationships", "pets")),
    ("Gallery Nine", ("fine-art", "events-and-attractions")),
    ("Harvest Table", ("food-and-drink", "healthy-living")),
    ("Pulse Fitness", ("healthy-living", "sports")),
    ("Workbench Supply", ("hobbies-and-interests", "home-and-garden")),
    ("Carewell Clinics", ("medical-health", "healthy-living")),
    ("Marquee Cinemas", ("movies", "television")),
    ("Soundwave Audio", ("music-and-audio", "technology-and-computing")),
    ("Civic Ledger Weekly", ("news-and-politics", "education")),
    ("Homestead Realty", ("real-estate", "home-and-garden")),
    ("Stillwater Retreats", ("religion-and-spirituality", "travel")),
    ("Quantum Labs Kits", ("science", "education")),
    ("Cartwheel Market", ("shopping", "style-and-fashion")),
    ("Atelier Rue", ("style-and-fashion", "shopping")),
    ("Pixelforge Games", ("video-gaming", "pop-culture")),
    ("Greenroute Travel", ("travel", "sustainability")),
)

HEADLINES = {
    "automotive": ("Test-drive the electric estate", "Winter tyres fitted in an hour"),
    "technology-and-computing": ("Laptops built to be repaired", "Faster Wi-Fi in every room"),
    "books-and-literature": ("Three books for the price of two", "This month's debut novels"),
    "education": ("Evening courses, real teachers", "Learn a language by spring"),
    "business-and-finance": ("Business accounts with no fees", "Invoice faster, get paid sooner"),
    "personal-finance": ("Savings that beat inflation", "Your pension, in plain words"),
    "careers": ("Find work you are proud of", "CV reviews by recruiters"),
    "family-and-relationships": ("Weekends the whole family enjoys", "Parenting, one week at a time"),
    "pets": ("Vet-approved food for good dogs", "Cat toys that last"),
    "fine-art": ("New prints from local artists", "Late openings on Thursdays"),
    "events-and-attractions": ("Tickets for this weekend", "Festival passes now on sale"),
    "food-and-drink": ("Seasonal recipe boxes", "Chef's table, Friday nights"),
    "healthy-living": ("Sleep better in a fortnight", "Plant-based meals made easy"),
    "sports": ("Running shoes for every stride", "Season tickets, family price"),
    "hobbies-and-interests": ("Tools for your next project", "Model kits for patient hands"),
    "home-and-garden": ("Raised beds, delivered", "Paint that covers in one coat"),
    "medical-health": ("See a GP today", "Health checks near you"),
    "movies": ("Premieres on the big screen", "Member nights: two for one"),
    "television": ("Every series, one subscription", "The box set weekend starts here"),
    "pop-culture": ("The fan convention returns", "Collectibles, officially licensed"),
    "music-and-audio": ("Headphones that hear you", "Vinyl reissues this week"),
    "news-and-politics": ("Read the debate, not the noise", "Subscribe to the briefing"),
    "real-estate": ("Homes with gardens, near schools", "Value your flat in minutes"),
    "religion-and-spirituality": ("Quiet weekends in the hills", "Meditation for beginners"),
    "travel": ("Night trains across Europe", "Islands without the crowds"),
    "science": ("Telescope kits for starry nights", "Lab kits for curious kids"),
    "shopping": ("Everyday essentials, delivered", "Members save on everything"),
    "style-and-fashion": ("The autumn collection", "Tailoring that fits"),
    "video-gaming": ("The co-op game of the year", "Controllers for every hand"),
    "sustainability": ("Travel lighter on the planet", "Offset every journey"),
}


@dataclass(frozen=True, slots=True)
class SeedResult:
    advertisers: int
    campaigns: int
    creatives: int
    created: int


def _mid_sentence(headline: str) -> str:
    """The headline as the rest of a sentence: its first letter lowered, unless its first word is an
    acronym ('CV reviews' stays, not 'cV reviews')."""
    first = headline.split(" ", 1)[0]
    if len(first) > 1 and first.isupper():
        return headline
    return headline[:1].lower() + headline[1:]


def _slugify(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def _image_write(*, name: str, svg: str) -> str:
    """Write an SVG under MEDIA_ROOT/ads/ (unchanged content is not rewritten); returns its file name."""
    relative = f"ads/{name}.svg"
    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != svg:
        path.write_text(svg, encoding="utf-8")
    return relative


def _html_creative(*, advertiser: str, headline: str, colour: str) -> str:
    # Rendered only in a sandboxed iframe; the <script> shows that it cannot run there.
    return (
        f'<!doctype html><html><body style="margin:0;font-family:sans-serif;background:{colour};color:#fff">'
        f'<div style="padding:16px"><strong>{advertiser}</strong><p>{headline}</p></div>'
        "<script>document.body.dataset.ran = 'yes'; parent.document.title = 'hijacked';</script>"
        "</body></html>"
    )


@transaction.atomic
def ads_demo_seed(*, categories: Sequence[str] | None = None, seed: int = 7) -> SeedResult:
    """~40 campaigns from 20 advertisers across the categories, plus house ads; a rerun changes nothing."""
    from adsite.content.selectors import category_slugs

    known = set(categories if categories is not None else category_slugs())
    rng = random.Random(seed)
    created = 0
    for name, size in PLACEMENT_SIZES.items():
        _, was_created = Placement.objects.get_or_create(name=name, defaults={"size": size})
        created += was_created
    starts = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    for index, (advertiser_name, cats) in enumerate(ADVERTISERS):
        advertiser, was_created = Advertiser.objects.get_or_create(
            name=advertiser_name, defaults={"website": f"https://{_slugify(advertiser_name)}.example/"}
        )
        created += was_created
        for number, category in enumerate(cats):
            other = cats[1 - number]
            interests = {c: w for c, w in ((category, 1.0), (other, 0.3)) if c in known} or {}
            sponsorship = index in (0, 10) and number == 0
            cpm = index % 7 == 3 and number == 1
            campaign, was_created = Campaign.objects.get_or_create(
                advertiser=advertiser,
                name=f"{category.replace('-', ' ').title()} {'autumn' if number == 0 else 'evergreen'}",
                defaults={
                    "tier": Campaign.Tier.SPONSORSHIP if sponsorship else Campaign.Tier.STANDARD,
                    "starts_at": starts,
                    "ends_at": starts + timedelta(days=365),
                    "pricing": Campaign.Pricing.CPM if (cpm or sponsorship) else Campaign.Pricing.CPC,
                    "bid": Decimal("6.00") if sponsorship else Decimal("3.00") if cpm else Decimal(str(round(rng.uniform(0.4, 0.6), 2))),
                    "daily_budget": Decimal("50.00") if sponsorship else Decimal(str(rng.choice((200, 300, 500)))),
                    "total_budget": Decimal(str(rng.choice((5000, 10000, 20000)))),
                    "interests": interests,
                    "interest_min_score": 0.15 if sponsorship else 0.0,
                    "devices": ["mobile"] if index == 7 and number == 1 else [],
                    "cap_per_hour": 4,
                    "cap_per_day": 12,
                },
            )
            created += was_created
            headlines = HEADLINES.get(category, (f"Discover {category}", f"More {category}"))
            for k, headline in enumerate(headlines):
                image = _image_write(name=f"{_slugify(advertiser_name)}-{number}-{k}", svg=banner_svg(advertiser=advertiser_name, headline=headline))
                html = index % 5 == 2 and number == 0 and k == 1
                _, was_created = Creative.objects.get_or_create(
                    campaign=campaign,
                    name=f"{advertiser_name} {number}-{k}",
                    defaults={
                        "kind": Creative.Kind.HTML if html else Creative.Kind.IMAGE,
                        "size": "300x250" if html else "fluid",
                        "image": image,
                        "headline": headline,
                        "body": f"{advertiser_name}: {_mid_sentence(headline)}. Offer for readers of The Bellwether.",
                        "cta": "Find out more",
                        "landing_url": f"https://{_slugify(advertiser_name)}.example/{category}?utm_source=bellwether",
                        "html": _html_creative(advertiser=advertiser_name, headline=headline, colour="#087e8b") if html else "",
                    },
                )
                created += was_created
    house, was_created = Advertiser.objects.get_or_create(name="The Bellwether", defaults={"website": "https://bellwether.example/"})
    created += was_created
    house_campaign, was_created = Campaign.objects.get_or_create(
        advertiser=house,
        name="House: newsletter and membership",
        defaults={
            "tier": Campaign.Tier.HOUSE, "starts_at": starts, "pricing": Campaign.Pricing.CPM, "bid": Decimal("0"),
            "daily_budget": Decimal("1000000"), "total_budget": Decimal("1000000000"),
        },
    )
    created += was_created
    for k, headline in enumerate(("The Sunday Edition, free every week", "Become a Bellwether member")):
        _, was_created = Creative.objects.get_or_create(
            campaign=house_campaign,
            name=f"House {k}",
            defaults={
                "headline": headline,
                "body": "Independent journalism, in your inbox and on your side.",
                "cta": "Join us",
                "image": _image_write(name=f"house-{k}", svg=banner_svg(advertiser="The Bellwether", headline=headline)),
                "landing_url": "https://bellwether.example/" + ("newsletter" if k == 0 else "membership"),
            },
        )
        created += was_created
    catalog_invalidate()
    return SeedResult(
        advertisers=Advertiser.objects.count(),
        campaigns=Campaign.objects.count(),
        creatives=Creative.objects.count(),
        created=created,
    )


# ---- staff edits (the dashboard; the admin writes through its own forms) -------------------------

CAMPAIGN_FIELDS = (
    "advertiser", "name", "status", "tier", "starts_at", "ends_at", "pricing", "bid", "daily_budget",
    "total_budget", "interests", "interest_min_score", "devices", "hours", "cap_per_hour", "cap_per_day",
)
CREATIVE_FIELDS = ("campaign", "name", "kind", "size", "image", "headline", "body", "cta", "landing_url", "html", "active")


def _save_validated(row: Campaign | Creative, fields: dict[str, Any], allowed: Sequence[str]) -> None:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    for name, value in fields.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    # now (this thread's next decision) and after commit (a rebuild meanwhile may have read the old row)
    catalog_invalidate()
    transaction.on_commit(catalog_invalidate)


@transaction.atomic
def campaign_create(*, fields: dict[str, Any]) -> Campaign:
    """A new campaign (validated like the admin does); decided on from the next catalog build."""
    campaign = Campaign()
    _save_validated(campaign, fields, CAMPAIGN_FIELDS)
    return campaign


@transaction.atomic
def campaign_update(*, campaign_id: int, fields: dict[str, Any]) -> Campaign:
    campaign = Campaign.objects.select_for_update().get(id=campaign_id)
    _save_validated(campaign, fields, CAMPAIGN_FIELDS)
    return campaign


def campaign_status_set(*, campaign_id: int, status: str) -> Campaign:
    """Pause or resume a campaign: a paused one leaves this process's catalog at once (other
    processes within ``CATALOG_SECONDS``), so ``ads_select`` stops choosing it."""
    if status not in Campaign.Status.values:
        raise ValueError(f"unknown campaign status {status!r}")
    return campaign_update(campaign_id=campaign_id, fields={"status": status})


@transaction.atomic
def creative_create(*, fields: dict[str, Any]) -> Creative:
    creative = Creative()
    _save_validated(creative, fields, CREATIVE_FIELDS)
    return creative


@transaction.atomic
def creative_update(*, creative_id: int, fields: dict[str, Any]) -> Creative:
    creative = Creative.objects.select_for_update().get(id=creative_id)
    _save_validated(creative, fields, CREATIVE_FIELDS)
    return creative


def creative_active_set(*, creative_id: int, active: bool) -> Creative:
    """Pause (``active=False``) or resume one creative; its campaign's other creatives keep running."""
    return creative_update(creative_id=creative_id, fields={"active": active})


def user_ads_forget(user_id: str) -> None:
    """The ads part of deleting a visitor's data (a ``TRACKING["USER_DELETE_HOOKS"]`` entry).

    Kept decision explanations go; click records stay for billing but no longer name the visitor.
    """
    DecisionExplanation.objects.filter(user_id=user_id).delete()
    AdClick.objects.filter(user_id=user_id).update(user_id="")
