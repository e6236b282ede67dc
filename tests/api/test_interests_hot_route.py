"""The server's hot route (adsite/ops/hot_routes.py): what a granian worker answers for a remembered client
before Django's handler is what Django's whole stack answers; every other request still reaches Django."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rest_framework.authtoken.models import Token

from adsite.rsgi import BufferedWSGI
from tests.ops.test_rsgi import Scope, stacks_in_test_transaction

pytestmark = pytest.mark.django_db

PATH = "/api/v1/users/alice/interests"


@pytest.fixture
def servers(predictor) -> Iterator[tuple[BufferedWSGI, BufferedWSGI]]:
    """(Django's whole stack, the same with the hot route in front); both through the server adapter."""
    from inference.rest.throttling import throttle_counters_reset

    throttle_counters_reset()
    with stacks_in_test_transaction() as stacks:
        yield stacks


@pytest.fixture
def token(db) -> str:
    from django.contrib.auth import get_user_model

    from inference.rest.authentication import CachedTokenAuthentication

    key = Token.objects.create(user=get_user_model().objects.create_user(username="svc")).key
    CachedTokenAuthentication().authenticate_credentials(key)  # checked once and remembered by this process
    return key


def _scope(token: str, *, path: str = PATH, query: str = "top=2", extra: list[tuple[str, str]] | None = None) -> Scope:
    headers = [("host", "127.0.0.1:8000"), ("authorization", f"Token {token}"), ("accept", "application/json")]
    return Scope("GET", path, query, headers + (extra or []))


def _serve(server: BufferedWSGI, scope: Scope) -> tuple[int, list[tuple[str, str]], bytes]:
    """What the worker does for a request without a body (``BufferedWSGI._serve``), outside an event loop:
    the test database's connection belongs to the test's thread and transaction."""
    extra: dict = {}
    if server.hot_routes is not None:
        answered = server.hot_routes.answer(scope, b"", extra)
        if answered is not None:
            return answered
    return server.call_wsgi(scope, b"", extra)


def test_a_worker_answers_a_remembered_client_before_django(servers, token, monkeypatch):
    import asyncio

    from tests.ops.test_rsgi import Proto

    calls = _django_calls(monkeypatch)
    proto = Proto([])
    asyncio.run(servers[1](_scope(token), proto))
    assert proto.response is not None and proto.response[0] == 200 and calls == []


def _django_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = BufferedWSGI.call_wsgi

    def counted(self, scope, body, extra=None):
        calls.append(scope.path)
        return original(self, scope, body, extra)

    monkeypatch.setattr(BufferedWSGI, "call_wsgi", counted)
    return calls


def test_the_hot_route_answers_as_djangos_stack_does(servers, token, monkeypatch):
    django, hot = servers
    calls = _django_calls(monkeypatch)
    status, headers, body = _serve(django, _scope(token))
    hot_status, hot_headers, hot_body = _serve(hot, _scope(token))
    assert calls == [PATH]  # the second server did not call Django
    assert (status, hot_status) == (200, 200)
    import orjson

    mine, theirs = orjson.loads(hot_body), orjson.loads(body)
    assert [c["category"] for c in mine["categories"]] == ["sports", "travel"]
    assert {k: v for k, v in mine.items() if k != "elapsed_ms"} == {k: v for k, v in theirs.items() if k != "elapsed_ms"}
    varying = {"server-timing", "content-length"}  # times differ, and with them the body's length
    assert {k.lower(): v for k, v in hot_headers if k.lower() not in varying} == {
        k.lower(): v for k, v in headers if k.lower() not in varying}
    assert {k.lower() for k, _ in hot_headers} == {k.lower() for k, _ in headers}
    timing = "Server-Timing"
    assert dict(hot_headers)["Content-Length"] == str(len(hot_body))
    assert dict(hot_headers)[timing].startswith("features;dur=") and 'desc="gbdt"' in dict(hot_headers)[timing]


def test_the_hot_route_is_counted_as_the_route(servers, token):
    from adsite.ops.metrics import HTTP_REQUESTS_TOTAL

    django, hot = servers
    _serve(django, _scope(token))
    counter = HTTP_REQUESTS_TOTAL.labels("user-interests", "2xx")
    before = counter._value.get()
    _serve(hot, _scope(token))
    assert counter._value.get() == before + 1


@pytest.mark.parametrize(
    ("case", "scope_kwargs"),
    [
        ("unknown token", {"token": "not-a-token"}),
        ("bad top", {"query": "top=0"}),
        ("a cookie", {"extra": [("cookie", "sessionid=abc")]}),
        ("another path", {"path": "/api/v1/users/alice/interests/"}),
    ],
)
def test_other_requests_reach_django(servers, token, monkeypatch, case, scope_kwargs):
    django, hot = servers
    _serve(django, _scope(token))
    calls = _django_calls(monkeypatch)
    scope_token = scope_kwargs.pop("token", token)
    status, _, _ = _serve(hot, _scope(scope_token, **scope_kwargs))
    assert calls, case
    assert status == {"unknown token": 401, "bad top": 400, "a cookie": 200, "another path": 404}[case]


def test_a_host_django_refuses_is_refused(servers, token):
    django, hot = servers
    _serve(django, _scope(token))
    scope = Scope("GET", PATH, "", [("host", "evil.example"), ("authorization", f"Token {token}")])
    assert _serve(hot, scope)[0] == 400


def test_a_client_over_its_rate_gets_drfs_429_counted_once(servers, token, monkeypatch):
    from inference.rest.throttling import InterestsRateThrottle, throttle_counters_reset

    monkeypatch.setattr(InterestsRateThrottle, "rate", "3/minute", raising=False)
    throttle_counters_reset()
    django, hot = servers
    statuses = [_serve(hot, _scope(token))[0] for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    assert "Retry-After" in dict(_serve(hot, _scope(token))[1])
