"""The demo advertisers, campaigns and creatives (``manage.py seed_ads``), with generated banner art."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from adsite.ads.artwork import banner_svg
from adsite.ads.catalog import catalog_invalidate
from adsite.ads.models import Advertiser, Campaign, Creative, Placement

logger = logging.getLogger(__name__)


PLACEMENT_SIZES = {"leaderboard": "728x90", "sidebar": "300x250", "in_article": "300x250", "footer": "728x90"}


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

# an advertiser's own copy where its second category's generic lines would not fit it (a car maker
# selling laptops): (advertiser, category) -> headlines
ADVERTISER_HEADLINES = {
    ("Northwind Motors", "technology-and-computing"): ("Phone-as-key on every new model", "Driver assist that updates overnight"),
    ("Soundwave Audio", "technology-and-computing"): ("Headphones that fold flat", "Multi-room speakers, one app"),
    ("Pageturner Books", "education"): ("Study guides for every exam", "Textbooks, new and second-hand"),
    ("Civic Ledger Weekly", "education"): ("Civics explained, one issue a week", "Free for students and teachers"),
    ("Kinfolk Family Club", "pets"): ("Family days out where dogs are welcome", "Kids and pets: a weekend guide"),
    ("Stillwater Retreats", "travel"): ("Silent retreats by the sea", "Weekend stays in a mountain monastery"),
}

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
                    "bid": Decimal("6.00")
                    if sponsorship
                    else Decimal("3.00")
                    if cpm
                    else Decimal(str(round(rng.uniform(0.4, 0.6), 2))),
                    "daily_budget": Decimal("50.00")
                    if sponsorship
                    else Decimal(str(rng.choice((200, 300, 500)))),
                    "total_budget": Decimal(str(rng.choice((5000, 10000, 20000)))),
                    "interests": interests,
                    "interest_min_score": 0.15 if sponsorship else 0.0,
                    "devices": ["mobile"] if index == 7 and number == 1 else [],
                    "cap_per_hour": 4,
                    "cap_per_day": 12,
                },
            )
            created += was_created
            headlines = ADVERTISER_HEADLINES.get(
                (advertiser_name, category), HEADLINES.get(category, (f"Discover {category}", f"More {category}"))
            )
            for k, headline in enumerate(headlines):
                image = _image_write(
                    name=f"{_slugify(advertiser_name)}-{number}-{k}",
                    svg=banner_svg(advertiser=advertiser_name, headline=headline),
                )
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
                        "html": _html_creative(
                            advertiser=advertiser_name, headline=headline, colour="#087e8b"
                        )
                        if html
                        else "",
                    },
                )
                created += was_created
    house, was_created = Advertiser.objects.get_or_create(
        name="The Bellwether", defaults={"website": "https://bellwether.example/"}
    )
    created += was_created
    house_campaign, was_created = Campaign.objects.get_or_create(
        advertiser=house,
        name="House: newsletter and membership",
        defaults={
            "tier": Campaign.Tier.HOUSE,
            "starts_at": starts,
            "pricing": Campaign.Pricing.CPM,
            "bid": Decimal("0"),
            "daily_budget": Decimal("1000000"),
            "total_budget": Decimal("1000000000"),
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
                "image": _image_write(
                    name=f"house-{k}", svg=banner_svg(advertiser="The Bellwether", headline=headline)
                ),
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
