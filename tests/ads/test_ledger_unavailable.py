"""Redis (the ads ledger in services mode) unreachable: ads degrade to house ads, clicks still reach the
advertiser unbilled, the dashboard says the counters are unknown. Nothing answers 500.

The ledger here is a ``RedisLedger`` pointed at a port nothing listens on: every call fails to connect,
as it does when the shared Redis is down.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token

from adsite.ads.accounting import LedgerUnavailable, RedisLedger
from adsite.ads.decisions import PlacementRequest, ads_select
from adsite.ads.eligibility import LEDGER_UNAVAILABLE
from adsite.ads.models import AdClick
from adsite.ads.tokens import CLICK_SALT, AdToken, token_make

from .conftest import browser


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on return: connections are refused


@pytest.fixture
def ledger_down(fresh_ads_state: Any, fresh_platform: Any) -> Iterator[RedisLedger]:
    dead = RedisLedger(f"redis://127.0.0.1:{_dead_port()}/0")
    fresh_platform.ledger_backend = dead  # the test's own platform, dropped afterwards
    yield dead


def test_the_redis_ledger_raises_its_own_error_when_redis_is_unreachable(ledger_down: RedisLedger) -> None:
    with pytest.raises(LedgerUnavailable):
        ledger_down.snapshot(campaign_ids=[1], creative_ids=[1], user_id="u", now=0.0)


def test_decisions_fall_back_to_house_ads_and_say_why(make_campaign: Any, interests: Any, ledger_down: Any) -> None:
    make_campaign(interests={"travel": 1.0})
    make_campaign()
    interests.scores["reader"] = {"travel": 0.9}
    decision = ads_select(user_id="reader", placements=[PlacementRequest("sidebar"), PlacementRequest("footer")])
    assert [c.house and c.creative is None for c in decision.choices] == [True, True]
    assert all(c.reason == "ad counters unavailable: house ad" for c in decision.choices)
    assert decision.filtered == {LEDGER_UNAVAILABLE: 2}


def test_the_decisions_api_answers_200_with_house_ads(make_campaign: Any, interests: Any, ledger_down: Any) -> None:
    make_campaign()
    token = Token.objects.create(user=get_user_model().objects.create_user("partner"))
    response = Client(HTTP_AUTHORIZATION=f"Token {token.key}").post(
        "/api/v1/ads/decisions", json.dumps({"user_id": "reader", "placements": ["sidebar"]}),
        content_type="application/json",
    )
    assert response.status_code == 200
    (slot,) = response.json()["placements"]
    assert slot["house"] and slot["creative"] is None and slot["explanation"] == "ad counters unavailable: house ad"


def test_a_click_still_reaches_the_landing_page_and_is_kept_unbilled(make_campaign: Any, ledger_down: Any) -> None:
    campaign = make_campaign(bid=Decimal("0.40"))
    creative = campaign.creatives.get()
    token = token_make(token=AdToken("serve-1", creative.id, campaign.id, "sidebar", "visitor"), salt=CLICK_SALT)
    response = browser("visitor").get(f"/c/{token}")
    assert response.status_code == 302 and response["Location"] == creative.landing_url
    assert list(AdClick.objects.values_list("outcome", "price_micros")) == [("free", 0)]


def test_the_dashboard_ads_pages_say_the_counters_are_unknown(make_campaign: Any, ledger_down: Any) -> None:
    campaign = make_campaign()
    staff = get_user_model().objects.create_user("staffer", password="pw-staff-123", is_staff=True)
    client = Client()
    client.force_login(staff)
    for url in ("/dashboard/ads/", f"/dashboard/ads/campaigns/{campaign.id}/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "ads ledger cannot be reached" in response.content.decode(), url

