"""placements_fill: house ads until the ads app names a provider; a provider's failure never breaks a page."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from adsite.content.covers import cover_svg
from adsite.content.placements import HOUSE_CAMPAIGN_ID, SlotAd, placements_fill

CHOSEN = SlotAd(
    placement="sidebar",
    creative_id="cr-42",
    campaign_id="cmp-7",
    headline="Trail shoes",
    body="Light.",
    cta="Shop",
    href="/c/token",
    house=False,
)


def provider_sidebar_only(*, request: Any, placements: list[str], categories: list[str]) -> dict[str, SlotAd]:
    return {"sidebar": CHOSEN} if "sidebar" in placements else {}


def provider_broken(**kwargs: Any) -> dict[str, SlotAd]:
    raise RuntimeError("ad server down")


def test_without_provider_every_slot_gets_a_house_ad(placements_answer: Any) -> None:
    placements_answer(None)
    slots = placements_fill(
        request=RequestFactory().get("/"), placements=["leaderboard", "sidebar", "in_article", "footer"]
    )

    assert list(slots) == ["leaderboard", "sidebar", "in_article", "footer"]
    assert all(
        ad.house and ad.campaign_id == HOUSE_CAMPAIGN_ID and ad.placement == name
        for name, ad in slots.items()
    )
    assert len({ad.creative_id for ad in slots.values()}) == 4


def test_provider_fills_its_slots_and_house_ads_fill_the_rest(placements_answer: Any) -> None:
    placements_answer(provider_sidebar_only)
    slots = placements_fill(request=RequestFactory().get("/"), placements=["leaderboard", "sidebar"])

    assert slots["sidebar"] == CHOSEN
    assert slots["leaderboard"].house


def test_a_failing_provider_falls_back_to_house_ads(placements_answer: Any) -> None:
    placements_answer(provider_broken)
    slots = placements_fill(request=RequestFactory().get("/"), placements=["sidebar"])

    assert slots["sidebar"].house


@pytest.mark.django_db
def test_a_chosen_ad_is_rendered_in_its_slot(placements_answer: Any, client: Any) -> None:
    from adsite.content.services import demo_content_seed

    demo_content_seed(articles_per_category=1)
    placements_answer(provider_sidebar_only)
    html = client.get("/").content.decode()

    assert 'data-placement="sidebar" data-creative-id="cr-42" data-campaign-id="cmp-7"' in html
    assert 'href="/c/token" rel="sponsored noopener"' in html


def test_cover_art_is_stable_per_article_and_escapes_its_label() -> None:
    a = cover_svg(category_slug="travel", seed_text="night-trains")
    assert a == cover_svg(category_slug="travel", seed_text="night-trains")
    assert a != cover_svg(category_slug="travel", seed_text="city-breaks")
    assert 'aria-hidden="true"' in a
    labelled = cover_svg(category_slug="imported-genre", seed_text="x", label='<b>"Film"</b>')
    assert 'role="img" aria-label="&lt;b&gt;&quot;Film&quot;&lt;/b&gt;"' in labelled
