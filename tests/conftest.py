"""Shared test fixtures.

Service-backed tests carry ``requires_redis`` / ``requires_postgres``. They run when the services
mode is configured (``DATABASE_URL`` / ``REDIS_URL``, as ``make test-services`` and ``.ci/run`` do)
and skip with a reason otherwise. With ``ADSITE_REQUIRE_SERVICES=1`` (set by ``.ci/run``) an
unreachable service fails those tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings

from benchmarks.ports import free_port  # noqa: F401  (tests import it from here)

ROOT = Path(__file__).resolve().parent.parent
# the datasets beside the checkout (../shared/data), or where ADSITE_SHARED_DATA says (a worktree elsewhere)
SHARED_DATA = Path(os.environ.get("ADSITE_SHARED_DATA") or ROOT.parent / "shared" / "data")
REQUIRE_SERVICES = os.environ.get("ADSITE_REQUIRE_SERVICES") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Debian's Chromium as root, headless, and quiet on a machine without outside network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _reachable(url: str | None, default_port: int) -> bool:
    if not url:
        return False
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _service_problem(marker: str) -> str | None:
    if marker == "requires_redis":
        if not settings.REDIS_URL:
            return "REDIS_URL is not set: service-backed tests run under `make test-services`"
        if not _reachable(settings.REDIS_URL, 6379):
            return f"Redis at {settings.REDIS_URL} is unreachable"
    if marker == "requires_postgres":
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
            return "DATABASE_URL does not name PostgreSQL: service-backed tests run under `make test-services`"
        db = settings.DATABASES["default"]
        if not _reachable(f"postgres://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}", 5432):
            return "PostgreSQL is unreachable"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in ("requires_redis", "requires_postgres"):
            if item.get_closest_marker(marker) is None:
                continue
            problem = _service_problem(marker)
            if problem is None:
                continue
            if REQUIRE_SERVICES and "not set" not in problem and "does not name" not in problem:
                item.add_marker(pytest.mark.xfail(reason=problem, run=False, strict=True))
                item.user_properties.append(("service_unreachable", problem))
            else:
                item.add_marker(pytest.mark.skip(reason=problem))
        if settings.REDIS_CLUSTER and {"private_redis", "private_redis_server"} & set(
            getattr(item, "fixturenames", ())
        ):
            # the suite on a Redis Cluster (tests/scaleout): a test that breaks a single redis-server of its
            # own shows the single-Redis behaviour; the cluster's (a master killed) is tests/scaleout's
            item.add_marker(pytest.mark.skip(reason="breaks a single private redis-server; on a cluster see tests/scaleout"))
        if item.get_closest_marker("browser") is not None and CHROMIUM is None:
            reason = "Debian's chromium is not installed (apt-get install chromium); .ci/run installs it"
            if REQUIRE_SERVICES:
                item.add_marker(pytest.mark.xfail(reason=reason, run=False, strict=True))
            else:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # In CI an unreachable service is a failure, not a skip.
    for name, problem in item.user_properties:
        if name == "service_unreachable":
            pytest.fail(f"required service unavailable: {problem}", pytrace=False)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA


def site_redis(url: str | None = None, **options: Any) -> Any:
    """A plain client (not the site's guarded one) for the site's Redis: a ``RedisCluster`` in the
    scale-out mode (``REDIS_CLUSTER=1``), where the suite also runs (tests/scaleout)."""
    import redis
    from redis.cluster import RedisCluster

    if settings.REDIS_CLUSTER:
        return RedisCluster.from_url(url or settings.REDIS_URL, **options)
    return redis.Redis.from_url(url or settings.REDIS_URL, **options)


@pytest.fixture
def redis_client() -> Iterator[object]:
    """A client for the services-mode Redis, emptied before the test (every master of a cluster)."""
    from redis.cluster import RedisCluster

    client = site_redis()
    if settings.REDIS_CLUSTER:
        client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    else:
        client.flushdb()
    yield client
    client.close()


class PrivateRedis:
    """A redis-server process of the test's own: ``url``; ``pause()`` (SIGSTOP: it accepts connections but
    answers nothing, like a hung server) and ``resume()``."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.proc = proc

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def private_redis_server() -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, on its own port, that the test may pause or kill.
    The shared Redis on 6379 is never touched."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _reachable(url, port):
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("private redis-server did not start")
        time.sleep(0.05)
    try:
        yield PrivateRedis(url, proc)
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture
def private_redis(private_redis_server: PrivateRedis) -> str:
    """The URL of a redis-server of the test's own (``private_redis_server``) that the test may kill."""
    return private_redis_server.url


@pytest.fixture(scope="session", autouse=True)
def process_predictor_stopped(django_db_setup: None) -> Iterator[None]:
    """The process's predictor (and its registry-polling thread, which holds a database connection of
    its own) stopped before the test database is dropped."""
    yield
    from inference.serving.runtime import predictor_install

    predictor_install(None)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: None, django_db_blocker: object) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process bound to the test database and the services-mode Redis."""
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set: a Celery worker needs the services mode")
    env = dict(os.environ)
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.postgresql":
        env["DATABASE_URL"] = (
            f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "adsite", "worker", "--pool=solo", "--loglevel=WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT,
        env=env,
    )
    time.sleep(3)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's Chromium driven by Playwright's sync API (no browser download)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls in tests stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM or "/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            # Django's connections are context-local (asgiref), and Playwright's event loop gives this thread
            # another context: a connection the test's fixtures opened meanwhile (a staff user's INSERT) is not
            # the one pytest-django closes, and it kept the test database from being dropped at the end.
            from django.db import connections

            connections.close_all()


@pytest.fixture
def placements_answer() -> Iterator[Callable[[Callable[..., Any] | None], None]]:
    """``placements_answer(provider)``: pages' ad slots are answered by ``provider(*, request, placements,
    categories)`` instead of the ads app's receiver (None: nobody answers, house ads only); the ads app's
    receiver is connected again after the test."""
    from adsite.ads import receivers
    from adsite.content.signals import placements_requested

    def use(provider: Callable[..., Any] | None) -> None:
        placements_requested.disconnect(dispatch_uid="ads.placements_requested")
        placements_requested.disconnect(dispatch_uid="test.placements")
        if provider is not None:
            placements_requested.connect(
                lambda sender, signal, **kwargs: provider(**kwargs), dispatch_uid="test.placements", weak=False
            )

    yield use
    placements_requested.disconnect(dispatch_uid="test.placements")
    placements_requested.connect(receivers.on_placements_requested, dispatch_uid="ads.placements_requested")


@pytest.fixture
def data_sources() -> Iterator[Callable[..., None]]:
    """``data_sources(events=fn, categories=fn)``: inference's requests for the stored events and the
    site's categories (``inference.api.stored_events_requested`` / ``categories_requested``) are answered
    by these functions instead of tracking's and the content app's receivers (each left as it is when
    not given); the apps' receivers are connected again after the test."""
    from adsite.content.receivers import on_categories_requested
    from inference.api import categories_requested, category_taxonomy_reset, stored_events_requested
    from tracking.receivers import on_stored_events_requested

    def use(*, events: Callable[..., Any] | None = None, categories: Callable[[], Any] | None = None) -> None:
        if events is not None:
            stored_events_requested.disconnect(dispatch_uid="tracking.stored_events_requested")
            stored_events_requested.disconnect(dispatch_uid="test.stored_events")  # a second call replaces
            stored_events_requested.connect(
                lambda sender, signal, **kwargs: events(since=kwargs.get("since"), until=kwargs.get("until")),
                dispatch_uid="test.stored_events",
                weak=False,
            )
        if categories is not None:
            categories_requested.disconnect(dispatch_uid="content.categories_requested")
            categories_requested.disconnect(dispatch_uid="test.categories")
            categories_requested.connect(
                lambda sender, signal, **kwargs: categories(), dispatch_uid="test.categories", weak=False
            )
            category_taxonomy_reset()

    yield use
    stored_events_requested.disconnect(dispatch_uid="test.stored_events")
    categories_requested.disconnect(dispatch_uid="test.categories")
    stored_events_requested.connect(on_stored_events_requested, dispatch_uid="tracking.stored_events_requested")
    categories_requested.connect(on_categories_requested, dispatch_uid="content.categories_requested")
    category_taxonomy_reset()


@pytest.fixture
def fresh_platform() -> Iterator[Any]:
    """This process's composition root (``adsite.platform``) replaced whole for the test: an empty
    in-memory ad ledger, the site's policy, no cached catalog or population; the previous one is put
    back afterwards. One swap instead of a reset per cache; a test changes a part by assigning it
    (``fresh_platform.ledger_backend = ...``)."""
    from adsite.ads.accounting import MemoryLedger
    from adsite.platform import Platform, platform_use

    fresh = Platform(ledger_backend=MemoryLedger(None))
    previous = platform_use(fresh)
    yield fresh
    platform_use(previous)


@pytest.fixture
def fresh_inference() -> Iterator[Any]:
    """Inference's per-process state (``inference.backends``: Redis clients and the guard's marks, feature
    stores, throttle counters, the taxonomy) replaced whole for the test, and closed and put back afterwards:
    one swap instead of a reset per part. The predictor is built afresh around it."""
    from inference.backends import Backends, backends_close, backends_use
    from inference.serving.runtime import predictor_install

    fresh = Backends()
    previous = backends_use(fresh)
    predictor_install(None)
    yield fresh
    backends_close(fresh)
    backends_use(previous)
    predictor_install(None)


@pytest.fixture(autouse=True)
def rate_limit_windows_fresh() -> Iterator[None]:
    """Each test starts with empty rate-limit windows (the anonymous endpoints' limits and the quarantine
    budget count per address, and every test client is 127.0.0.1)."""
    from inference.api import category_taxonomy_reset
    from inference.rest.throttling import throttle_counters_reset

    throttle_counters_reset()
    if settings.REDIS_URL:  # services mode: the windows live in Redis, shared by the tests of one minute
        import redis

        try:
            client = site_redis(socket_timeout=1, socket_connect_timeout=1)
            stale = list(client.scan_iter(match="rl:*", count=1000))
            if stale:
                client.delete(*stale)
            client.close()
        except redis.RedisError:
            pass  # the tests that need Redis say so themselves
    category_taxonomy_reset()  # the taxonomy read by tracking is cached for 30 s: each test reads its own
    yield


BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


@pytest.fixture
def client() -> Any:
    """pytest-django's test client, as a browser: it sends a browser's User-Agent (a request without one
    is a bot to the site, which serves it no paid ads and bills nothing of what it does)."""
    from django.test import Client

    return Client(HTTP_USER_AGENT=BROWSER_UA)
