"""``POST /api/v1/ads/decisions`` on the server's hot route (adsite/ops/hot_routes.py, adsite/ads/hot.py): what a
granian worker answers for a remembered client before Django's handler is what Django's whole stack answers
(the same ad, the same links, the same headers, the impression counted once); every other request still gets
the view's own answer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from rest_framework.authtoken.models import Token

from adsite.rsgi import BufferedWSGI
from tests.api.test_interests_hot_route import _django_calls
from tests.ops.test_rsgi import Scope, stacks_in_test_transaction

pytestmark = pytest.mark.django_db

PATH = "/api/v1/ads/decisions"


@pytest.fixture
def servers() -> Iterator[tuple[BufferedWSGI, BufferedWSGI]]:
    """(Django's whole stack, the same with the hot route in front); both through the server adapter."""
    with stacks_in_test_transaction() as stacks:
        yield stacks


@pytest.fixture
def token(db: None) -> str:
    from django.contrib.auth import get_user_model

    from inference.rest.authentication import CachedTokenAuthentication

    key = Token.objects.create(user=get_user_model().objects.create_user(username="publisher")).key
    CachedTokenAuthentication().authenticate_credentials(key)  # checked once and remembered by this process
    return str(key)


def _post(server: BufferedWSGI, body: Any, *, token: str, content_type: str = "application/json",
          extra: list[tuple[str, str]] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """What the worker does with a buffered request body (``BufferedWSGI._serve``), outside an event loop."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [("host", "127.0.0.1:8000"), ("authorization", f"Token {token}"), ("content-type", content_type),
               ("content-length", str(len(raw))), *(extra or [])]
    scope = Scope("POST", PATH, "", headers)
    found: dict[str, Any] = {}
    if server.hot_routes is not None:
        answered = server.hot_routes.answer(scope, raw, found)
        if answered is not None:
            return answered
    return server.call_wsgi(scope, raw, found)


def test_the_hot_route_decides_as_djangos_stack_does(servers: Any, token: str, make_campaign: Any, monkeypatch: Any,
                                                      fresh_ads_state: Any) -> None:
    campaign = make_campaign(advertiser="Only Co", pricing="cpm", bid=Decimal("2.00"))  # 2,000 micros an impression
    django, hot = servers
    calls = _django_calls(monkeypatch)
    asked = {"user_id": "reader", "placements": ["sidebar"]}
    status, headers, body = _post(django, asked, token=token)
    hot_status, hot_headers, hot_body = _post(hot, asked, token=token)
    assert calls == [PATH]  # the second server did not call Django
    assert (status, hot_status) == (200, 200)
    theirs, mine = orjson.loads(body), orjson.loads(hot_body)
    same = {"decision_id", "elapsed_ms", "placements"}
    assert {k: v for k, v in mine.items() if k not in same} == {k: v for k, v in theirs.items() if k not in same}
    assert mine["decision_id"] != theirs["decision_id"]
    (slot,), (their_slot,) = mine["placements"], theirs["placements"]
    assert slot["creative"] == their_slot["creative"] and slot["creative"]["campaign_id"] == campaign.id
    drawn = ("click_url", "impression_url", "explanation")  # signed per impression; the rate a Thompson draw
    assert {k: v for k, v in slot.items() if k not in drawn} == {k: v for k, v in their_slot.items() if k not in drawn}
    assert slot["explanation"].split("expected")[0] == their_slot["explanation"].split("expected")[0]
    for name in ("click_url", "impression_url"):  # signed for each impression, on the same absolute links
        assert slot[name].rsplit("/", 2)[0] == their_slot[name].rsplit("/", 2)[0] == "http://127.0.0.1:8000"
        assert slot[name] != their_slot[name]
    assert {k.lower(): v for k, v in hot_headers if k.lower() != "content-length"} == {
        k.lower(): v for k, v in headers if k.lower() != "content-length"}
    assert dict(hot_headers)["Content-Length"] == str(len(hot_body))
    # both impressions were counted and charged, each once
    assert fresh_ads_state.spend(campaign_id=campaign.id, now=time.time())[0] == 2 * 2_000


def test_a_hot_decision_is_counted_as_the_route(servers: Any, token: str, make_campaign: Any) -> None:
    from adsite.ops.metrics import HTTP_REQUESTS_TOTAL

    make_campaign()
    counter = HTTP_REQUESTS_TOTAL.labels("ads-decisions", "2xx")
    before = counter._value.get()
    assert _post(servers[1], {"user_id": "reader", "placements": ["sidebar"]}, token=token)[0] == 200
    assert counter._value.get() == before + 1


@pytest.mark.parametrize(
    ("case", "body", "kwargs", "expected"),
    [
        ("unknown token", {"user_id": "r", "placements": ["sidebar"]}, {"token": "not-a-token"}, 401),
        ("schema refuses", {"user_id": "r", "placements": "sidebar"}, {}, 400),
        ("not JSON", b"{placements", {}, 400),
        ("explain, not staff", {"user_id": "r", "placements": ["sidebar"], "explain": True}, {}, 403),
        ("unknown placement", {"user_id": "r", "placements": ["nowhere"]}, {}, 400),
        ("form encoded", b"user_id=r&placements=sidebar", {"content_type": "application/x-www-form-urlencoded"}, 415),
        ("a cookie", {"user_id": "r", "placements": ["sidebar"]}, {"extra": [("cookie", "sessionid=abc")]}, 200),
        ("indented JSON", {"user_id": "r", "placements": ["sidebar"]},
         {"extra": [("accept", "application/json; indent=4")]}, 200),
    ],
)
def test_other_decisions_get_the_views_own_answer(servers: Any, token: str, make_campaign: Any, monkeypatch: Any,
                                                  case: str, body: Any, kwargs: dict[str, Any], expected: int) -> None:
    make_campaign()
    calls = _django_calls(monkeypatch)
    status, _, answer = _post(servers[1], body, **{"token": token, **kwargs})
    assert calls == [PATH], case
    assert status == expected, (case, answer)
    if status != 200:
        assert "errors" in orjson.loads(answer)  # the API's error shape, worded by the view


def test_an_unexpected_failure_on_the_hot_route_is_the_apis_json_500(servers: Any, token: str, make_campaign: Any,
                                                                       monkeypatch: Any) -> None:
    """As Django's stack answers an error no view handled under /api/ (adsite/ops/api_errors.py); the decision
    is not run again by Django (it may have reserved impressions already)."""
    import adsite.ads.hot

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    make_campaign()
    monkeypatch.setattr(adsite.ads.hot, "api_decision", broken)
    calls = _django_calls(monkeypatch)
    status, headers, body = _post(servers[1], {"user_id": "reader", "placements": ["sidebar"]}, token=token)
    assert (status, calls) == (500, [])
    assert dict(headers)["Content-Type"] == "application/json"
    assert orjson.loads(body) == {"errors": {"detail": "internal server error"}}


@pytest.mark.parametrize("stack", ["django", "hot route"])
def test_a_client_over_its_decisions_rate_gets_drfs_429_counted_once(
    servers: Any, token: str, make_campaign: Any, monkeypatch: Any, fresh_ads_state: Any, stack: str, settings: Any
) -> None:
    """Each API client's decisions are rate limited, on either path alike: the hot route counts the request
    and hands a client over its rate to the view, whose 429 says when to retry; the hit is counted once (the
    fourth request is the first refused), and another client is counted apart."""
    from django.contrib.auth import get_user_model

    from adsite.ads.hot import DECISIONS_THROTTLE
    from inference.rest.authentication import CachedTokenAuthentication
    from inference.rest.throttling import throttle_counters_reset

    make_campaign()
    settings.REDIS_URL = ""  # counted in this process (tests/api/test_throttling.py counts in Redis)
    monkeypatch.setattr(DECISIONS_THROTTLE, "rate", "3/minute", raising=False)
    monkeypatch.setattr(DECISIONS_THROTTLE, "timer", staticmethod(lambda: 1_800_000_000.0))  # one window
    throttle_counters_reset()
    server = dict(zip(["django", "hot route"], servers, strict=True))[stack]
    asked = {"user_id": "reader", "placements": ["sidebar"]}
    answers = [_post(server, asked, token=token) for _ in range(5)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429, 429]
    refused = answers[3]
    assert 0 < int(dict(refused[1])["Retry-After"]) <= 60
    assert "throttled" in orjson.loads(refused[2])["errors"]["detail"].lower()  # the API's one error shape
    other = Token.objects.create(user=get_user_model().objects.create_user(username="another-publisher")).key
    CachedTokenAuthentication().authenticate_credentials(other)
    assert _post(server, asked, token=str(other))[0] == 200
    throttle_counters_reset()
