"""RSGI entry point (``granian --interface rsgi adsite.rsgi:application``): the production web server.

Why not granian's WSGI interface or gunicorn's sync workers: both hand the request to a Python worker before
its body has arrived, so a client that sends headers and then trickles (or never sends) the body holds that
worker until a time-out; two such connections stalled both workers of the site. Here granian's Rust side
reads the whole body (``await proto()`` yields to the event loop, so other connections go on being served),
and only then is Django's ordinary WSGI handler called, synchronously, on the worker's one thread: one
request at a time per process, as gunicorn's sync workers run it, but with keep-alive and no per-request
thread hand-off. A body over ``ADSITE_SERVER["MAX_BODY_BYTES"]`` is answered 413 without reading the rest.
Embedded mode serves from one process that must answer concurrent requests (its state is in-process): there,
``ADSITE_SERVER["THREADS"]`` > 1 runs the handler in a pool of that many threads instead.

Load shedding: each worker counts the requests it has taken and not yet answered (its queue, since it runs
one at a time). Beyond ``ADSITE_SERVER["MAX_IN_FLIGHT"]`` a new request is answered at once ``503`` with
``Retry-After: 1`` and ``{"error": "overloaded"}``, without reading its body or running Django: past the
knee, a visitor gets a quick answer that ``tracker.js`` retries instead of a wait that grows with the queue
(the answers a worker does give stay within about MAX_IN_FLIGHT service times). The probes (``/healthz``,
``/readyz``, ``/metrics``) are never shed. Shed requests are counted in ``http_requests_shed_total``.

Django refuses ORM calls from a thread whose event loop is running (``SynchronousOnlyOperation``), a guard
against two coroutines sharing one connection. That cannot happen here: the inline handler runs to
completion between two awaits, so no other request's code interleaves with it; the guard is switched off
for a server worker (``DJANGO_ALLOW_ASYNC_UNSAFE``, set in ``__rsgi_init__``), as Django documents for such callers.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

# headers whose WSGI names carry no HTTP_ prefix
_UNPREFIXED = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
# never shed: an overloaded worker must still say it is alive, and how it is
_NEVER_SHED = frozenset({"/healthz", "/readyz", "/metrics"})
_OVERLOADED = b'{"error": "overloaded", "detail": "the server is at capacity; retry after 1 s"}'


def _split_host_port(value: str, default_port: str) -> tuple[str, str]:
    host, sep, port = value.rpartition(":")
    return (host, port) if sep and port.isdigit() else (value, default_port)


def _exit_with_parent() -> None:
    """A worker whose granian main process dies goes too (Linux ``PR_SET_PDEATHSIG``): otherwise it kept
    serving on its own listening socket beside the workers of the main process started in its place."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    # the main process may have died while this worker was starting (before the request above): its
    # parent is then whichever process adopted it, not a granian
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
            parent = handle.read()
    except OSError:
        parent = b""
    if b"granian" not in parent:
        os.kill(os.getpid(), signal.SIGKILL)


class BufferedWSGI:
    """An RSGI application that buffers each request body, then runs a WSGI application on it."""

    def __init__(self, wsgi_app: Any, *, max_body_bytes: int, threads: int = 1, max_in_flight: int = 0,
                 hot_routes: bool = False) -> None:
        self.wsgi_app = wsgi_app
        # the interests route answered before Django's handler (adsite.ops.hot_routes); inline workers only
        self.hot_routes: Any = None
        if hot_routes and threads <= 1:
            from adsite.ops.hot_routes import HotRoutes

            self.hot_routes = HotRoutes()
        self.max_body_bytes = max_body_bytes
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="adsite-web") if threads > 1 else None
        self.max_in_flight = max_in_flight  # 0: no shedding
        # requests taken and not yet answered; only the event loop's thread changes it
        self.in_flight = 0
        self._shed_counter: Any = None
        # this process's share of the clients' keep-alive connections (set in a server worker, __rsgi_init__)
        self.balance: Any = None
        self._balanced_counter: Any = None

    def __rsgi_init__(self, loop: Any) -> None:
        # this is a server worker: Django code runs inline on its event loop's thread (module docstring)
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        _exit_with_parent()
        # the predictor built and warm, the start-up heap frozen (adsite/ops/warmup.py), before any traffic
        from adsite.ops.warmup import web_process_warm

        web_process_warm()
        if settings.ADSITE_SERVER.get("BALANCE_CONNECTIONS", True):
            from adsite.ops.connection_balance import ConnectionBalance
            from adsite.ops.metrics import HTTP_CONNECTIONS_BALANCED

            self.balance = ConnectionBalance.from_environ()
            self._balanced_counter = HTTP_CONNECTIONS_BALANCED
        # warm: a graceful reload may now stop the worker this one replaces (adsite.ops.granian_server)
        from adsite.ops.granian_server import worker_ready_mark

        worker_ready_mark()
        # embedded mode has no Celery beat: the dashboard's rollups (metrics snapshots, traffic minutes, site
        # analytics) run on a thread of the one web process from start-up, not on page views
        if settings.ADSITE_MODE == "embedded" and (getattr(settings, "DASHBOARD", {}) or {}).get("ROLLUP_THREAD"):
            try:
                from adsite.dashboard.rollup import rollup_thread_start

                rollup_thread_start()
            except Exception:
                import logging

                logging.getLogger("adsite.server").exception("adsite: dashboard rollup thread failed to start")

    def __rsgi_del__(self, loop: Any) -> None:
        # the decisions' counts a process adds up and writes once a second: written before it goes (a granian
        # worker ends without the interpreter's exit handlers, which do it in other processes)
        from adsite.ads.metrics import decision_metrics_flush

        decision_metrics_flush()
        if self.balance is not None:
            self.balance.forget()
        # a stopped worker's live gauges leave the aggregated /metrics (gunicorn's child_exit did this)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())

    def _shed(self, proto: Any) -> None:
        proto.response_bytes(503, [("content-type", "application/json"), ("retry-after", "1")], _OVERLOADED)
        if self._shed_counter is None:
            from adsite.ops.metrics import HTTP_REQUESTS_SHED

            self._shed_counter = HTTP_REQUESTS_SHED
        self._shed_counter.inc()

    async def __call__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":  # no websockets here
            return
        if self.max_in_flight and self.in_flight >= self.max_in_flight and scope.path not in _NEVER_SHED:
            self._shed(proto)
            return
        self.in_flight += 1
        try:
            await self._serve(scope, proto)
        finally:
            self.in_flight -= 1

    async def _serve(self, scope: Any, proto: Any) -> None:
        declared = scope.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            proto.response_bytes(413, [("content-type", "application/json"), ("connection", "close")],
                                 b'{"error": "body_too_large", "detail": "request body over the server limit"}')
            return
        if declared in (None, "0") and scope.http_version != "2" and scope.headers.get("transfer-encoding") is None:
            # HTTP/1 with no body declared (neither a length nor chunks): nothing to wait for, and not asking
            # the Rust side for it spares the request a wake-up of the event loop from granian's thread. One turn
            # of the loop all the same: the requests already waiting start, and count in ``in_flight``, before
            # this one runs, as they do while a body is awaited (without it, a burst of GETs would run one by one,
            # each counting alone, and never be shed)
            await asyncio.sleep(0)
            await self._answer(scope, proto, b"")
            return
        chunks: list[bytes] = []
        size = 0
        async for chunk in proto:
            size += len(chunk)
            if size > self.max_body_bytes:
                proto.response_bytes(413, [("content-type", "application/json"), ("connection", "close")],
                                     b'{"error": "body_too_large", "detail": "request body over the server limit"}')
                return
            chunks.append(chunk)
        await self._answer(scope, proto, b"".join(chunks))

    async def _answer(self, scope: Any, proto: Any, body: bytes) -> None:
        if self.hot_routes is not None:
            extra: dict[str, Any] = {}
            answered = self.hot_routes.answer(scope, body, extra)
            if answered is not None:
                self._respond(scope, proto, *answered)
                return
            if extra:
                self._respond(scope, proto, *self.call_wsgi(scope, body, extra))
                return
        if self.pool is None:
            status, headers, payload = self.call_wsgi(scope, body)
        else:
            status, headers, payload = await asyncio.get_running_loop().run_in_executor(
                self.pool, self.call_wsgi, scope, body)
        self._respond(scope, proto, status, headers, payload)

    def _respond(self, scope: Any, proto: Any, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        """The answer sent; it closes its keep-alive connection where this process holds more than its share
        of them (``adsite.ops.connection_balance``: the client reconnects, maybe to another process)."""
        if self.balance is not None and scope.http_version == "1.1" and self.balance.closes(scope.client):
            headers = [*headers, ("connection", "close")]  # a new list: the hot routes' headers are shared
            self._balanced_counter.inc()
        proto.response_bytes(status, headers, payload)

    def environ(self, scope: Any, body: bytes) -> dict[str, Any]:
        scheme = scope.scheme
        server_name, server_port = _split_host_port(scope.server, "443" if scheme == "https" else "80")
        client_addr, client_port = _split_host_port(scope.client, "0")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope.method,
            "SCRIPT_NAME": "",
            # WSGI carries the decoded path as latin-1 code points of its bytes (PEP 3333)
            "PATH_INFO": scope.path.encode("utf-8", "surrogateescape").decode("latin-1"),
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": client_addr,
            "REMOTE_PORT": client_port,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for name, value in scope.headers.items():
            key = _UNPREFIXED.get(name) or "HTTP_" + name.upper().replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        if body or "CONTENT_LENGTH" in environ:
            environ["CONTENT_LENGTH"] = str(len(body))
        return environ

    def call_wsgi(self, scope: Any, body: bytes,
                  extra: dict[str, Any] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started["status"], started["headers"] = int(status[:3]), headers
            return lambda data: chunks.append(data)  # the legacy write() callable

        chunks: list[bytes] = []
        environ = self.environ(scope, body)
        if extra:
            environ.update(extra)
        result: Iterable[bytes] = self.wsgi_app(environ, start_response)
        try:
            for chunk in result:
                chunks.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:  # Django's request_finished (database connections closed or kept) runs here
                close()
        return started["status"], started["headers"], b"".join(chunks)


application = BufferedWSGI(get_wsgi_application(), max_body_bytes=int(settings.ADSITE_SERVER["MAX_BODY_BYTES"]),
                           threads=int(settings.ADSITE_SERVER["THREADS"]),
                           max_in_flight=int(settings.ADSITE_SERVER.get("MAX_IN_FLIGHT", 0)),
                           hot_routes=bool(settings.ADSITE_SERVER.get("HOT_ROUTES", True)))
