"""Fixtures for the ads tests: a fresh in-memory ledger, a catalog built per test, fake interests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from adsite.ads import decisions
from adsite.ads.accounting import Ledger, MemoryLedger, RedisLedger
from adsite.ads.catalog import catalog_invalidate
from adsite.ads.models import Advertiser, Campaign, Creative, Placement
from adsite.platform import Platform
from inference.api import Interests


@pytest.fixture(autouse=True)
def fresh_ads_state(settings: Any, fresh_platform: Platform) -> Iterator[MemoryLedger]:
    """Each test: a fresh platform (an empty in-memory ledger, no cached catalog), no pacing unless
    asked, nothing sampled, the catalog rebuilt per decision."""
    settings.ADS = {**settings.ADS, "PACING": False, "EXPLAIN_SAMPLE": 0.0, "CATALOG_SECONDS": 0.0, "BUDGET_MS": 2000.0}
    memory = fresh_platform.ledger
    assert isinstance(memory, MemoryLedger)
    yield memory


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.requires_redis)])
def each_ledger(request: pytest.FixtureRequest, settings: Any) -> Iterator[Ledger]:
    """A new empty ledger of each backend in turn: in-process, and on the Redis at ``REDIS_URL`` (one server
    or a Redis Cluster) under a prefix of its own; cleared afterwards."""
    import uuid

    if request.param == "redis":
        if not settings.REDIS_URL:
            pytest.skip("REDIS_URL is not set")
        book: Ledger = RedisLedger(settings.REDIS_URL, prefix=f"test-ads-{uuid.uuid4().hex}:")
    else:
        book = MemoryLedger(None)
    yield book
    book.clear()


class FakeInterests:
    """Stands in for ``inference.api.predict_interests`` and ``population_interests``: per-user interest
    shares (the population's under ""), or an outage. Its answers are real ``Interests`` built with
    ``Interests.from_shares`` as the prior writes them, so they honour the score contract
    (``tests/ads/test_fake_interests.py`` checks them with the contract test inference's own answers pass)."""

    def __init__(self) -> None:
        self.scores: dict[str, dict[str, float]] = {}
        self.down = False
        self.calls = 0
        self.users: list[str] = []

    def __call__(self, user_id: str, *, deadline: Any = None, top: int = 10) -> Interests:
        self.calls += 1
        self.users.append(user_id)
        if self.down:
            raise RuntimeError("inference is down")
        shares = self.scores.get(user_id, {})
        ordered = sorted(shares.items(), key=lambda kv: -kv[1])[:top]
        return Interests.from_shares(
            ordered, served_by="prior", model_version="test", fallback_reason=None if shares else "cold_start",
            elapsed_ms=0.1,
        )

    def population(self, *, deadline: Any = None, top: int = 10) -> Interests:
        return self("", deadline=deadline, top=top)


@pytest.fixture
def interests(monkeypatch: pytest.MonkeyPatch) -> FakeInterests:
    fake = FakeInterests()
    # the population: every category equally likely
    fake.scores[""] = {c: 0.2 for c in ("travel", "sports", "pets", "science", "movies")}
    monkeypatch.setattr(decisions, "predict_interests", fake)
    monkeypatch.setattr(decisions, "population_interests", fake.population)
    return fake


@pytest.fixture
def placements(db: None) -> None:
    for name, size in (("leaderboard", "728x90"), ("sidebar", "300x250"), ("in_article", "300x250"), ("footer", "728x90")):
        Placement.objects.get_or_create(name=name, defaults={"size": size})


CampaignFactory = Callable[..., Campaign]


@pytest.fixture
def make_campaign(db: None, placements: None) -> CampaignFactory:
    counter = {"n": 0}

    def make(
        *,
        advertiser: str | None = None,
        interests: dict[str, float] | None = None,
        creatives: int = 1,
        size: str = "fluid",
        **fields: Any,
    ) -> Campaign:
        counter["n"] += 1
        n = counter["n"]
        adv, _ = Advertiser.objects.get_or_create(name=advertiser or f"Advertiser {n}")
        defaults: dict[str, Any] = {
            "name": f"Campaign {n}",
            "starts_at": timezone.now() - timedelta(days=1),
            "ends_at": timezone.now() + timedelta(days=30),
            "pricing": Campaign.Pricing.CPC,
            "bid": Decimal("0.50"),
            "daily_budget": Decimal("100"),
            "total_budget": Decimal("1000"),
            "interests": interests or {},
        }
        defaults.update(fields)
        campaign = Campaign.objects.create(advertiser=adv, **defaults)
        for k in range(creatives):
            Creative.objects.create(
                campaign=campaign, name=f"Creative {n}-{k}", size=size, headline=f"Headline {n}-{k}",
                body="Body", landing_url=f"https://advertiser{n}.example/landing?c={k}",
            )
        catalog_invalidate()
        return campaign

    return make


BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


def browser(user: str = "visitor", **extra: Any) -> Any:
    """A test client as a visitor's browser: a browser's user agent and the visitor's identity cookie."""
    from django.test import Client

    client = Client(HTTP_USER_AGENT=BROWSER_UA, **extra)
    if user:
        client.cookies["adsite_uid"] = user
    return client
