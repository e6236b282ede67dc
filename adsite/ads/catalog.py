"""The in-process catalog: every active campaign with its creatives, as frozen values.

Promises: ``catalog_current()`` answers from memory, so the decision path never touches the ORM row by
row. The catalog is rebuilt (three queries, however many campaigns; several ms) at most every
``ADS["CATALOG_SECONDS"]``, in a background thread while requests keep deciding from the previous
catalog, so no visitor's decision pays for the rebuild out of its 10 ms budget. A request builds it
itself only when there is none: the process's first, and the first after ``catalog_invalidate()``
(a change through the admin or a service, seen at once). ``CATALOG_SECONDS = 0`` means no caching:
every call builds (tests). Dates, budgets and caps are NOT resolved here: they change by the second
and are checked per decision.

A process that has no catalog yet while the database cannot be read (PostgreSQL down before its first
decision) decides from an empty one, marked ``unavailable`` and not kept (the next call tries again):
every placement gets the built-in house ad, and no visitor sees an error for it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from adsite.ads.conf import ads_setting
from adsite.platform import Platform, platform

logger = logging.getLogger(__name__)

MICROS = 1_000_000
TIER_RANK = {"sponsorship": 0, "standard": 1, "house": 2}


def to_micros(amount: Decimal | float | int) -> int:
    return int((Decimal(str(amount)) * MICROS).to_integral_value())


@dataclass(frozen=True, slots=True)
class CreativeView:
    id: int
    campaign_id: int
    kind: str  # image | html
    size: str
    image_url: str
    headline: str
    body: str
    cta: str
    landing_url: str
    html: str


@dataclass(frozen=True, slots=True)
class CampaignView:
    id: int
    name: str
    advertiser_id: int
    advertiser: str
    tier: str
    pricing: str  # cpm | cpc
    bid_micros: int
    daily_budget_micros: int
    total_budget_micros: int
    starts_at: datetime
    ends_at: datetime | None
    interests: tuple[tuple[str, float], ...]
    interest_min_score: float
    devices: frozenset[str]
    hours: frozenset[int]
    cap_per_hour: int
    cap_per_day: int
    creatives: tuple[CreativeView, ...]
    # the dates as seconds since the epoch (``ends_ts`` infinite when open-ended): read by every decision
    starts_ts: float = field(init=False, repr=False)
    ends_ts: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts_ts", self.starts_at.timestamp())
        object.__setattr__(self, "ends_ts", self.ends_at.timestamp() if self.ends_at is not None else math.inf)

    @property
    def price_micros(self) -> int:
        """What one billable event costs: an impression (CPM) or a click (CPC)."""
        return self.bid_micros // 1000 if self.pricing == "cpm" else self.bid_micros

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(slug for slug, _ in self.interests)


@dataclass(frozen=True, slots=True)
class Catalog:
    campaigns: tuple[CampaignView, ...]
    placement_sizes: dict[str, str]  # placement name -> size
    built_at: float
    campaigns_by_id: dict[int, CampaignView] = field(default_factory=dict)
    creatives_by_id: dict[int, CreativeView] = field(default_factory=dict)
    unavailable: bool = False  # the database could not be read and there was no catalog to keep


def catalog_build() -> Catalog:
    """Read the active catalog from the database (three queries)."""
    from adsite.ads.models import Campaign, Creative, Placement

    creatives: dict[int, list[CreativeView]] = {}
    for row in Creative.objects.filter(active=True, campaign__status=Campaign.Status.ACTIVE).order_by("id"):
        creatives.setdefault(row.campaign_id, []).append(
            CreativeView(
                id=row.id,
                campaign_id=row.campaign_id,
                kind=row.kind,
                size=row.size,
                image_url=row.image.url if row.image else "",
                headline=row.headline,
                body=row.body,
                cta=row.cta,
                landing_url=row.landing_url,
                html=row.html,
            )
        )
    campaigns = []
    for row in Campaign.objects.filter(status=Campaign.Status.ACTIVE).select_related("advertiser").order_by("id"):
        weights = row.interests if isinstance(row.interests, dict) else {}
        campaigns.append(
            CampaignView(
                id=row.id,
                name=row.name,
                advertiser_id=row.advertiser_id,
                advertiser=row.advertiser.name,
                tier=row.tier,
                pricing=row.pricing,
                bid_micros=to_micros(row.bid),
                daily_budget_micros=to_micros(row.daily_budget),
                total_budget_micros=to_micros(row.total_budget),
                starts_at=row.starts_at,
                ends_at=row.ends_at,
                interests=tuple(sorted((str(k), float(v)) for k, v in weights.items())),
                interest_min_score=float(row.interest_min_score),
                devices=frozenset(row.devices or ()),
                hours=frozenset(int(h) for h in (row.hours or ())),
                cap_per_hour=row.cap_per_hour,
                cap_per_day=row.cap_per_day,
                creatives=tuple(creatives.get(row.id, ())),
            )
        )
    sizes = dict(Placement.objects.values_list("name", "size"))
    return Catalog(
        campaigns=tuple(campaigns),
        placement_sizes=sizes,
        built_at=time.monotonic(),
        campaigns_by_id={c.id: c for c in campaigns},
        creatives_by_id={cr.id: cr for c in campaigns for cr in c.creatives},
    )


def _refresh(owner: Platform, stale: Catalog) -> None:
    """The background rebuild: publish the new catalog unless it was invalidated (or the platform
    replaced) meanwhile."""
    from django.db import connections

    try:
        fresh = catalog_build()
        with owner.catalog_lock:
            if owner.catalog is stale:  # invalidated (None) or replaced meanwhile: the newer state wins
                owner.catalog = fresh
    except Exception:  # the database is away: keep deciding from the stale catalog, retry later
        logger.warning("ads.catalog_refresh_failed: deciding from the previous catalog", exc_info=True)
    finally:
        with owner.catalog_lock:
            owner.catalog_refreshing = False
        connections.close_all()  # this thread's own connection


def catalog_current() -> Catalog:
    """The catalog this process decides from (the platform's; see the module docstring for when it is rebuilt)."""
    owner = platform()
    current = owner.catalog
    max_age = float(ads_setting("CATALOG_SECONDS"))
    if current is not None and max_age > 0:
        if time.monotonic() - current.built_at >= max_age:
            with owner.catalog_lock:
                start, owner.catalog_refreshing = not owner.catalog_refreshing, True
            if start:
                threading.Thread(target=_refresh, args=(owner, current), name="ads-catalog-refresh", daemon=True).start()
        return current
    from django.db import DatabaseError

    with owner.catalog_lock:
        built = owner.catalog
        if built is None or built is current:  # nobody built it while we waited
            try:
                built = owner.catalog = catalog_build()
            except DatabaseError as exc:
                logger.warning("ads.catalog_unavailable (%s): house ads until the database answers",
                               type(exc).__name__)
                return Catalog(campaigns=(), placement_sizes={}, built_at=time.monotonic(), unavailable=True)
        return built


def catalog_invalidate() -> None:
    """Forget this process's catalog (after a change through the admin or a service): the next
    decision builds the new one itself."""
    owner = platform()
    with owner.catalog_lock:
        owner.catalog = None
