"""adsite/rsgi.py: the request Django sees through the buffering server adapter is the one the client sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from adsite.rsgi import BufferedWSGI


@contextmanager
def stacks_in_test_transaction() -> Iterator[tuple[BufferedWSGI, BufferedWSGI]]:
    """(Django's whole stack, the same with the hot routes in front), both through the server adapter, for
    tests inside a database transaction: Django's request signals would close the test's connection (on
    PostgreSQL, for good) at each request's start and end; its own test client disconnects them the same way."""
    from unittest import mock

    from django.core.signals import request_finished, request_started
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    app = get_wsgi_application()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        # the hot decisions route does at its end what the request_finished signal does: not here either
        with mock.patch("adsite.ops.hot_routes.close_old_connections", lambda: None):
            yield BufferedWSGI(app, max_body_bytes=1 << 20), BufferedWSGI(app, max_body_bytes=1 << 20, hot_routes=True)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


class Headers:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def get(self, key: str, default: Any = None) -> Any:
        return next((v for k, v in self._items if k == key), default)


class Scope:
    proto = "http"
    http_version = "1.1"
    scheme = "http"
    server = "127.0.0.1:8000"
    client = "10.0.0.7:51234"

    def __init__(self, method: str, path: str, query: str, headers: list[tuple[str, str]]) -> None:
        self.method, self.path, self.query_string, self.headers = method, path, query, Headers(headers)


class Proto:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.asked = False  # whether the adapter asked for the body
        self.response: tuple[int, list[tuple[str, str]], bytes] | None = None

    def __aiter__(self) -> Any:
        self.asked = True

        async def gen() -> Any:
            for chunk in self.chunks:
                yield chunk
        return gen()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.response = (status, headers, body)


class Echo:
    """A WSGI app answering with what it was given; records that the server closed its response."""

    closed = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        seen = {k: v for k, v in environ.items() if isinstance(v, str)}
        seen["body"] = environ["wsgi.input"].read().decode()
        start_response("201 Created", [("Content-Type", "application/json")])
        app = self

        class Body(list):  # type: ignore[type-arg]
            def close(self) -> None:
                app.closed += 1

        return Body([json.dumps(seen).encode()])


def _call(app: BufferedWSGI, scope: Scope, chunks: list[bytes]) -> tuple[int, list[tuple[str, str]], bytes]:
    proto = Proto(chunks)
    asyncio.run(app(scope, proto))
    assert proto.response is not None
    return proto.response


def test_request_reaches_the_app_with_its_path_query_headers_and_whole_body() -> None:
    echo = Echo()
    app = BufferedWSGI(echo, max_body_bytes=1000)
    scope = Scope("POST", "/café/a b", "q=%20&top=5",
                  [("host", "example.com"), ("content-type", "text/plain"), ("content-length", "11"),
                   ("x-forwarded-for", "1.2.3.4"), ("x-a", "1"), ("x-a", "2")])
    status, headers, body = _call(app, scope, [b"hello", b" world"])
    seen = json.loads(body)
    assert status == 201 and headers == [("Content-Type", "application/json")]
    assert seen["body"] == "hello world" and seen["CONTENT_LENGTH"] == "11"
    assert seen["PATH_INFO"] == "/café/a b".encode().decode("latin-1")  # PEP 3333: bytes as latin-1
    assert seen["QUERY_STRING"] == "q=%20&top=5"
    assert (seen["CONTENT_TYPE"], seen["HTTP_HOST"], seen["HTTP_X_A"]) == ("text/plain", "example.com", "1,2")
    assert (seen["REMOTE_ADDR"], seen["SERVER_PORT"], seen["REQUEST_METHOD"]) == ("10.0.0.7", "8000", "POST")
    assert echo.closed == 1


def test_a_request_that_declares_no_body_is_answered_without_waiting_for_one_and_any_declared_body_is_read() -> None:
    echo = Echo()
    app = BufferedWSGI(echo, max_body_bytes=1000)
    bare = Proto([])
    asyncio.run(app(Scope("GET", "/healthz", "", [("host", "example.com")]), bare))
    assert bare.response is not None and bare.response[0] == 201 and not bare.asked
    assert json.loads(bare.response[2])["body"] == "" and "CONTENT_LENGTH" not in json.loads(bare.response[2])
    # a GET may still carry a body, declared by its length or sent in chunks: it reaches the app whole
    declared = Scope("GET", "/search", "", [("content-length", "5")])
    assert json.loads(_call(app, declared, [b"hel", b"lo"])[2])["body"] == "hello"
    chunked = Scope("GET", "/search", "", [("transfer-encoding", "chunked")])
    assert json.loads(_call(app, chunked, [b"hel", b"lo"])[2])["body"] == "hello"
    # HTTP/2 may send a body with neither header: it is read there
    h2 = Scope("POST", "/collect", "", [])
    h2.http_version = "2"  # type: ignore[misc]
    assert json.loads(_call(app, h2, [b"{}"])[2])["body"] == "{}"
    assert echo.closed == 4


def test_body_over_the_limit_is_413_and_never_reaches_the_app() -> None:
    echo = Echo()
    app = BufferedWSGI(echo, max_body_bytes=8)
    declared = Scope("POST", "/collect", "", [("content-length", "9")])
    assert _call(app, declared, [b"123456789"])[0] == 413
    chunked = Scope("POST", "/collect", "", [("transfer-encoding", "chunked")])
    assert _call(app, chunked, [b"12345", b"6789"])[0] == 413
    assert echo.closed == 0


def test_threaded_mode_answers_the_same() -> None:
    app = BufferedWSGI(Echo(), max_body_bytes=100, threads=2)
    status, _, body = _call(app, Scope("GET", "/healthz", "", []), [])
    assert status == 201 and json.loads(body)["PATH_INFO"] == "/healthz"
    assert "CONTENT_LENGTH" not in json.loads(body)


@pytest.mark.django_db  # Django's request_started closes stale connections: an earlier browser test may leave one
def test_site_answers_through_the_adapter(monkeypatch) -> None:
    from adsite.rsgi import application

    # as granian's worker runs it: __rsgi_init__ lets Django code run inline on the event loop's thread
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    status, headers, body = _call(application, Scope("GET", "/healthz", "", [("host", "127.0.0.1")]), [])
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_beyond_max_in_flight_requests_are_shed_503_with_retry_after_and_probes_still_answer() -> None:
    """A worker holding MAX_IN_FLIGHT requests answers the next one at once, 503 + Retry-After, without
    running the app; the probes still reach it; once it has caught up it serves again."""
    echo = Echo()
    app = BufferedWSGI(echo, max_body_bytes=1000, max_in_flight=2)

    async def scenario() -> list[Proto]:
        gate = asyncio.Event()

        class Waiting(Proto):
            def __aiter__(self) -> Any:  # a body that arrives once the gate opens: the request stays in flight
                async def gen() -> Any:
                    await gate.wait()
                    yield b"x"
                return gen()

        held = [Waiting([]) for _ in range(2)]
        tasks = [asyncio.create_task(app(Scope("POST", "/collect", "", [("content-length", "1")]), proto)) for proto in held]
        await asyncio.sleep(0)
        assert app.in_flight == 2
        shed, probe = Proto([b"y"]), Proto([])
        await app(Scope("POST", "/collect", "", [("content-length", "1")]), shed)
        await app(Scope("GET", "/healthz", "", []), probe)
        gate.set()
        await asyncio.gather(*tasks)
        after = Proto([b"z"])
        await app(Scope("POST", "/collect", "", [("content-length", "1")]), after)
        return [*held, shed, probe, after]

    first, second, shed, probe, after = asyncio.run(scenario())
    assert shed.response is not None and shed.response[0] == 503
    assert ("retry-after", "1") in shed.response[1]
    assert json.loads(shed.response[2])["error"] == "overloaded"
    assert probe.response is not None and probe.response[0] == 201  # the probe reached the app
    assert [p.response[0] for p in (first, second, after) if p.response] == [201, 201, 201]
    assert app.in_flight == 0


@pytest.mark.django_db
def test_requests_without_a_body_that_arrive_together_count_in_flight_and_are_shed_past_the_bound() -> None:
    """A GET is answered without waiting for a body, yet a burst of them still queues where the bound sees it."""
    app = BufferedWSGI(Echo(), max_body_bytes=1000, max_in_flight=2)

    async def burst() -> list[Proto]:
        protos = [Proto([]) for _ in range(5)]
        await asyncio.gather(*(app(Scope("GET", "/api/v1/users/u/interests", "", []), p) for p in protos))
        return protos

    statuses = sorted(p.response[0] for p in asyncio.run(burst()) if p.response is not None)
    assert statuses == [201, 201, 503, 503, 503]
    assert app.in_flight == 0


def test_a_warm_web_process_keeps_its_start_up_heap_out_of_full_collections() -> None:
    """``web_process_warm`` (both servers' start-up) freezes what start-up allocated: a full collection,
    which stalls every request queued on the process, then walks only what was allocated since."""
    import gc

    from adsite.ops.warmup import web_process_warm

    try:
        gc.collect()  # what earlier tests left unreachable is not start-up's: count the live objects only
        tracked = len(gc.get_objects())
        web_process_warm()
        assert gc.get_freeze_count() >= 0.9 * tracked
        assert len(gc.get_objects()) < 0.1 * gc.get_freeze_count()
    finally:
        gc.unfreeze()
