"""GET /c/<token>: records every click, bills only genuine fresh unused tokens, and redirects only to
the creative's stored landing URL, whatever the input (open-redirect corpus)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from django.core.exceptions import ValidationError

from adsite.ads.catalog import catalog_invalidate
from adsite.ads.models import AdClick, Campaign, Creative
from adsite.ads.tokens import (
    CLICK_SALT,
    FORGED,
    VALID,
    VIEW_SALT,
    AdToken,
    token_make,
    token_read,
    tokens_make,
)

from .conftest import browser

pytestmark = pytest.mark.django_db

OPEN_REDIRECT_CORPUS = [
    "//evil.example",
    "//evil.example/%2e%2e",
    "/\\evil.example",
    "\\\\evil.example",
    "http:\\\\evil.example",
    "https:/\\evil.example",
    "javascript:alert(document.domain)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "%2F%2Fevil.example",
    "%2f%5cevil.example",
    "https%3A%2F%2Fevil.example",
    "/%0d%0aLocation:%20https://evil.example",
    "https://good.example/\r\nLocation: https://evil.example",
    "https://good.example/%0d%0aSet-Cookie:%20x=1",
    " https://evil.example",
    "https://evil.example@good.example",
    "///evil.example",
    "ftp://evil.example",
]


def click_url(campaign: Campaign, *, user: str = "visitor", serve_id: str = "serve-1") -> str:
    creative = campaign.creatives.get()
    token = token_make(token=AdToken(serve_id, creative.id, campaign.id, "sidebar", user), salt=CLICK_SALT)
    return f"/c/{token}"


def landing_of(campaign: Campaign) -> str:
    return campaign.creatives.get().landing_url


def test_a_genuine_click_is_billed_once_and_redirects_to_the_landing_url(make_campaign: Any, fresh_ads_state: Any) -> None:
    campaign = make_campaign(bid=Decimal("0.40"))
    url = click_url(campaign)
    first = browser().get(url)
    assert first.status_code == 302 and first["Location"] == landing_of(campaign)
    replay = browser().get(url)
    assert replay.status_code == 302 and replay["Location"] == landing_of(campaign)
    assert list(AdClick.objects.order_by("id").values_list("outcome", "price_micros")) == [("billed", 400_000), ("replay", 0)]
    assert fresh_ads_state.spend(campaign_id=campaign.id, now=time.time())[0] == 400_000
    assert fresh_ads_state.creative_stats(creative_id=campaign.creatives.get().id).clicks == 1


def test_a_click_on_a_cpm_campaign_is_counted_but_charges_nothing(make_campaign: Any, fresh_ads_state: Any) -> None:
    campaign = make_campaign(pricing=Campaign.Pricing.CPM, bid=Decimal("4.00"))
    assert browser().get(click_url(campaign)).status_code == 302
    (outcome, price), = AdClick.objects.values_list("outcome", "price_micros")
    assert price == 0  # the record agrees with the ledger: CPM pays for impressions only
    assert fresh_ads_state.spend(campaign_id=campaign.id, now=time.time())[0] == 0
    assert fresh_ads_state.creative_stats(creative_id=campaign.creatives.get().id).clicks == 1


def test_an_expired_token_is_recorded_not_billed(make_campaign: Any, settings: Any, fresh_ads_state: Any) -> None:
    campaign = make_campaign()
    url = click_url(campaign)
    settings.ADS = {**settings.ADS, "CLICK_MAX_AGE_S": -1}  # every token is older than that
    response = browser().get(url)
    assert response["Location"] == landing_of(campaign)
    assert list(AdClick.objects.values_list("outcome", "price_micros")) == [("expired", 0)]
    assert fresh_ads_state.spend(campaign_id=campaign.id, now=time.time()) == (0, 0)


def test_a_tampered_token_is_forged_and_never_billed(make_campaign: Any, fresh_ads_state: Any) -> None:
    victim = make_campaign()
    attacker = make_campaign()
    genuine = click_url(victim)
    payload, stamp, signature = genuine.removeprefix("/c/").split(":")
    other_payload = click_url(attacker).removeprefix("/c/").split(":")[0]
    for forged in (f"{other_payload}:{stamp}:{signature}", f"{payload}:{stamp}:{signature[:-2]}AA", "x", "a" * 2000):
        response = browser().get(f"/c/{forged}")
        assert response.status_code == 302 and response["Location"] == "/"
    assert not AdClick.objects.exists()  # a token that is not genuine names nothing: counted, no row
    assert fresh_ads_state.report_read(since=None, now=time.time()) == {"0:ivc.unknown_serve": 4}
    assert fresh_ads_state.spend(campaign_id=victim.id, now=time.time()) == (0, 0)
    assert fresh_ads_state.spend(campaign_id=attacker.id, now=time.time()) == (0, 0)


@pytest.mark.parametrize("attack", OPEN_REDIRECT_CORPUS)
def test_no_token_input_redirects_off_site(attack: str, make_campaign: Any) -> None:
    make_campaign()
    for path in (f"/c/{quote(attack, safe='')}", f"/c/{quote(attack, safe='/:%')}", f"/c/x?next={quote(attack)}"):
        response = browser().get(path)
        location = response.get("Location", "")
        assert response.status_code in (302, 404)
        assert location in ("", "/"), (path, location)


@pytest.mark.parametrize("attack", OPEN_REDIRECT_CORPUS)
def test_a_stored_landing_url_from_the_corpus_never_leaves_the_site(attack: str, make_campaign: Any) -> None:
    campaign = make_campaign()
    creative = campaign.creatives.get()
    creative.landing_url = attack
    with pytest.raises(ValidationError):
        creative.full_clean()  # the admin refuses it
    Creative.objects.filter(id=creative.id).update(landing_url=attack)  # a row written past the validators
    catalog_invalidate()
    response = browser().get(click_url(campaign))
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert "evil" not in response.serialize_headers().decode("latin-1")


def test_click_on_a_paused_campaign_still_goes_to_its_own_landing_unbilled(make_campaign: Any, fresh_ads_state: Any) -> None:
    campaign = make_campaign()
    url = click_url(campaign)
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.PAUSED)
    catalog_invalidate()
    response = browser().get(url)
    assert response["Location"] == landing_of(campaign)
    assert list(AdClick.objects.values_list("outcome", "price_micros")) == [("free", 0)]


def test_a_click_while_the_database_refuses_writes_is_redirected_and_not_billed(
    make_campaign: Any, fresh_ads_state: Any, monkeypatch: Any
) -> None:
    """The click row is written before the charge: with the database unavailable the visitor still reaches
    the landing page and nothing is charged, so spend never runs ahead of the click rows (the fault battery
    stops PostgreSQL for real: tests/faults)."""
    from django.db import OperationalError
    from django.db.models import QuerySet

    campaign = make_campaign(bid=Decimal("0.40"))
    url = click_url(campaign)
    client = browser()
    client.get("/")  # the session and catalog are read before the database goes away

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr(QuerySet, "create", refuse)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == landing_of(campaign)
    assert fresh_ads_state.spend(campaign_id=campaign.id, now=time.time())[0] == 0
    monkeypatch.undo()
    assert not AdClick.objects.exists()
    assert browser().get(url).status_code == 302  # once it is back, the same click is billed
    assert list(AdClick.objects.values_list("outcome", "price_micros")) == [("billed", 400_000)]


def test_a_click_billed_as_the_database_goes_away_gets_its_row_once_the_database_is_back(
    make_campaign: Any, fresh_ads_state: Any, monkeypatch: Any
) -> None:
    """The window the row-first order leaves: the row is written, the ledger bills the click, and the
    database goes away before the row says so. The ledger keeps what the row owes; the settling (the
    beat's task, or the next click that reaches the database) writes it, so the click rows and the
    spend agree again (tests/faults stops PostgreSQL for real mid-traffic)."""
    from django.db import OperationalError
    from django.db.models import QuerySet

    from adsite.ads.services.billing import click_rows_settle

    campaign = make_campaign(bid=Decimal("0.40"))
    client = browser()
    client.get("/")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(QuerySet, "update", refuse)
    response = client.get(click_url(campaign, serve_id="serve-1"))
    assert response.status_code == 302 and response["Location"] == landing_of(campaign)
    assert fresh_ads_state.spend(campaign_id=campaign.id, now=time.time())[0] == 400_000  # charged
    assert list(AdClick.objects.values_list("outcome", "price_micros")) == [("free", 0)]  # row behind
    with pytest.raises(OperationalError):
        click_rows_settle()  # an outage is the caller's to wait out; nothing is forgotten
    monkeypatch.undo()
    assert click_rows_settle() == 1
    assert list(AdClick.objects.values_list("outcome", "price_micros")) == [("billed", 400_000)]
    assert click_rows_settle() == 0  # settled once


def test_the_next_click_that_reaches_the_database_settles_what_earlier_clicks_owe(
    make_campaign: Any, fresh_ads_state: Any, monkeypatch: Any
) -> None:
    """Embedded mode has no beat: a later click writes the rows owed before it."""
    from django.db import OperationalError
    from django.db.models import QuerySet

    campaign = make_campaign(bid=Decimal("0.40"))
    client = browser()
    client.get("/")
    real_update = QuerySet.update
    refusing = {"on": True}

    def update(self: Any, **kwargs: Any) -> Any:
        if refusing["on"]:
            raise OperationalError("database is locked")
        return real_update(self, **kwargs)

    monkeypatch.setattr(QuerySet, "update", update)
    client.get(click_url(campaign, serve_id="serve-1"))
    refusing["on"] = False
    client.get(click_url(campaign, serve_id="serve-2"))
    assert sorted(AdClick.objects.values_list("token_id", "outcome", "price_micros")) == [
        ("serve-1", "billed", 400_000), ("serve-2", "billed", 400_000),
    ]
    assert fresh_ads_state.click_rows_owed(limit=10) == []


def test_a_served_ads_click_and_impression_links_each_verify_only_as_what_they_are() -> None:
    """The two links of one served ad share one payload, signed once per purpose: an impression link's
    token is never a click (nor the reverse), and each reads back the same served ad."""
    served = AdToken("serve-9", 12, 3, "sidebar", "reader", binding="b1", origin="api")
    click, view = tokens_make(token=served, salts=(CLICK_SALT, VIEW_SALT))
    assert token_read(click, max_age_s=60, salt=CLICK_SALT) == (VALID, served)
    assert token_read(view, max_age_s=60, salt=VIEW_SALT) == (VALID, served)
    assert token_read(view, max_age_s=60, salt=CLICK_SALT) == (FORGED, None)
    assert token_read(click, max_age_s=60, salt=VIEW_SALT) == (FORGED, None)
    assert token_read(click, max_age_s=60, salt=CLICK_SALT) == token_read(
        token_make(token=served, salt=CLICK_SALT), max_age_s=60, salt=CLICK_SALT)


@pytest.mark.parametrize("served", [
    AdToken("serve-9", 12, 3, "sidebar", "reader", binding="b1", origin="api"),
    AdToken("a" * 16 + ".tpjq6h." + "f" * 22, 7, 1, "leaderboard", "lecteur-é-ü-中", origin="edge"),
    AdToken("s", 1, 1, "x", ""),  # too short to gain from compression: sent plain
])
def test_links_are_signed_exactly_as_djangos_signer_signs_them(served: AdToken, monkeypatch: Any) -> None:
    """The links are signed without Django's signer object (its key derivation at every call was a third of
    a link's cost) and must stay what it makes: ``token_read`` verifies them with ``signing.loads``, and links
    already out there were made by ``signing.dumps``."""
    from django.core import signing

    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)
    payload = {"s": served.serve_id, "c": served.creative_id, "k": served.campaign_id, "p": served.placement,
               "u": served.user_id, **({"b": served.binding} if served.binding else {}),
               **({"o": served.origin} if served.origin != "page" else {})}
    expected = [signing.dumps(payload, salt=salt, compress=True) for salt in (CLICK_SALT, VIEW_SALT)]
    assert tokens_make(token=served, salts=(CLICK_SALT, VIEW_SALT)) == expected


def test_serve_ids_are_signed_as_before_so_ids_already_issued_still_verify() -> None:
    from django.utils.crypto import salted_hmac

    from adsite.ads.tokens import SERVE_SALT, serve_id_read

    head = "0123456789abcdef.tpjq6h"
    before = f"{head}.{salted_hmac(SERVE_SALT, f'{head}|12|reader', algorithm='sha256').hexdigest()[:22]}"
    assert serve_id_read(before, creative_id=12, user_id="reader", max_age_s=10**10) == VALID
    assert serve_id_read(before, creative_id=13, user_id="reader", max_age_s=10**10) == FORGED
