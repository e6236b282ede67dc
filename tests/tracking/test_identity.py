"""The visitor id cookie (adsite_uid) and the one tracking_allowed decision."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpResponse, JsonResponse

from tracking.api import tracking_allowed, visitor_id
from tracking.middleware import IdentityCookieMiddleware
from tracking.network import ip_truncate


def test_visitor_id_comes_from_the_cookie_or_is_minted_once_per_request(rf: Any) -> None:
    request = rf.get("/")
    request.COOKIES["adsite_uid"] = "abc-123"
    assert visitor_id(request) == "abc-123"
    fresh = rf.get("/")
    assert visitor_id(fresh) == visitor_id(fresh) != ""
    forged = rf.get("/")
    forged.COOKIES["adsite_uid"] = "<script>"
    assert visitor_id(forged) != "<script>"


def test_middleware_sets_a_readable_year_long_lax_cookie_on_html(rf: Any) -> None:
    middleware = IdentityCookieMiddleware(lambda request: HttpResponse("<html></html>"))
    request = rf.get("/")
    cookie = middleware(request).cookies["adsite_uid"]
    assert cookie.value == visitor_id(request)
    assert cookie["samesite"] == "Lax" and not cookie["httponly"]
    assert int(cookie["max-age"]) == 365 * 24 * 3600


@pytest.mark.parametrize("headers", [{"HTTP_DNT": "1"}, {"HTTP_SEC_GPC": "1"}])
def test_middleware_sets_no_cookie_for_dnt_or_gpc(rf: Any, headers: dict[str, str]) -> None:
    middleware = IdentityCookieMiddleware(lambda request: HttpResponse("<html></html>"))
    assert "adsite_uid" not in middleware(rf.get("/", **headers)).cookies


def test_middleware_leaves_json_responses_alone(rf: Any) -> None:
    middleware = IdentityCookieMiddleware(lambda request: JsonResponse({}))
    assert "adsite_uid" not in middleware(rf.get("/")).cookies


def test_tracking_allowed_needs_consent_only_when_required(rf: Any, settings: Any) -> None:
    assert tracking_allowed(rf.get("/"))
    settings.TRACKING = {**settings.TRACKING, "CONSENT_REQUIRED": True}
    assert not tracking_allowed(rf.get("/"))
    request = rf.get("/")
    request.COOKIES["adsite_consent"] = "granted"
    assert tracking_allowed(request)
    request.META["HTTP_SEC_GPC"] = "1"
    assert not tracking_allowed(request)


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("192.0.2.201", "192.0.2.0"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::"),
        ("::ffff:198.51.100.7", "198.51.100.0"),
        ("not an ip", ""),
    ],
)
def test_ip_truncate_keeps_24_or_48_bits(address: str, stored: str) -> None:
    assert ip_truncate(address) == stored
