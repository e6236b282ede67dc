"""A services stack of its own for the fault battery and the soak: Redis, PostgreSQL, the site, traffic, the count.

Everything here runs on spare ports and temporary directories: a ``redis-server`` with AOF
(``appendonly yes``, ``appendfsync always``, its directory in memory: ``RedisServer``), a PostgreSQL
cluster of its own (``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/*/bin``, run as the
``postgres`` user when the tests run as root, since PostgreSQL refuses to run as root) and the site
started by ``scripts/serve.sh`` in services mode (the web server, Celery worker and beat, each a
program of supervisord). The machine's own
PostgreSQL, Redis and RabbitMQ are never touched.

``Traffic`` sends tracker batches (``/collect``) and server-to-server batches (``/api/v1/events``)
with event ids it remembers, retrying a batch that got no 2xx as ``tracker.js`` does, and timing every
answer; ``Traffic.reconcile`` then counts by id what the database holds.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchmarks.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


def wait_for(check: Callable[[], bool], *, timeout: float, what: str, every: float = 0.2) -> float:
    """Poll ``check`` until true; return the seconds it took; raise ``TimeoutError`` naming ``what``."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # a service still starting
            pass
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- Redis ------------------------------------------------------------------------------------------


class RedisServer:
    """A ``redis-server`` with AOF (``appendfsync always``: written and synced before each reply, the README's
    setting for losing nothing acknowledged) in a directory of its own; ``kill`` / ``start`` keep the AOF.

    The directory is in ``/dev/shm`` (memory) where there is one: a process killed leaves it as a disk would,
    and the host's shared disk cannot decide what Redis keeps or how fast it answers. On a disk other work
    keeps busy Redis itself takes back writes it acknowledged with ``everysec``, and with ``always`` it gets
    too slow for the decisions' budget; ``python -m benchmarks.redis_aof`` measures both (docs/reliability.md),
    with ``in_memory=False`` (the directory under ``base``).
    """

    def __init__(self, base: Path, appendfsync: str = "always", *, in_memory: bool = True) -> None:
        shm = Path("/dev/shm")
        if in_memory and shm.is_dir() and os.access(shm, os.W_OK):
            self.dir = Path(tempfile.mkdtemp(prefix="adsite-redis-", dir=shm))
        else:
            self.dir = base / "redis"
            self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
             "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.client().ping(), timeout=20, what="redis-server start")

    def client(self, timeout: float = 2.0) -> Any:
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=timeout, socket_connect_timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)


# --- PostgreSQL -------------------------------------------------------------------------------------


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    assert pg_ctl, "PostgreSQL server binaries (initdb, pg_ctl) not found"
    return Path(pg_ctl).parent


class PostgresCluster:
    """A PostgreSQL cluster of its own: ``initdb`` into a temporary directory, ``pg_ctl`` on a spare port.

    ``fsync=off``: the battery kills the server process, never the machine, so committed data is in
    the kernel's page cache either way; it only saves the shared disk's time.
    """

    def __init__(self, base: Path) -> None:
        self.dir = base / "pgdata"
        self.port = free_port()
        self.bin = _pg_bin()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/adsite"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([*self.as_user, *args], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.dir.parent, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "adsite")

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off "
                   "-c max_connections=200 -c shared_buffers=64MB")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-o", options, "-l", str(self.dir / "log"),
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.dir / "postmaster.pid").exists() and _port_open(self.port)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return pg_query(self.url, sql, params)


def pg_query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows of one statement on the PostgreSQL database at ``url`` (autocommit)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


class Database(Protocol):
    """What ``Traffic.reconcile`` counts in: a PostgreSQL cluster of the stack's own, or the rehearsal's database."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


# --- The site ---------------------------------------------------------------------------------------


@dataclass
class SiteProcess:
    pid: int
    ppid: int
    role: str  # web-master, web-worker, supervisord, celery-worker, celery-child, beat, other
    cmdline: str


def _processes_in_session(sid: int) -> list[SiteProcess]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid, session = fields[0], int(fields[1]), int(fields[3])
        if session != sid or state == "Z":
            continue
        found.append(SiteProcess(int(entry), ppid, "", cmdline))
    pids = {p.pid: p for p in found}
    for proc in found:
        parent = pids.get(proc.ppid)
        if "granian" in proc.cmdline or "gunicorn" in proc.cmdline:
            server = "granian" if "granian" in proc.cmdline else "gunicorn"
            proc.role = "web-worker" if parent and server in parent.cmdline else "web-master"
        elif "supervisord" in proc.cmdline:
            proc.role = "supervisord"
        elif "celery" in proc.cmdline and " beat" in proc.cmdline:
            proc.role = "beat"
        elif "celery" in proc.cmdline and " worker" in proc.cmdline:
            proc.role = "celery-child" if parent and "celery" in parent.cmdline else "celery-worker"
        else:
            proc.role = "other"
    return found


class Site:
    """The site in services mode, started by ``scripts/serve.sh`` as ``make run`` does: one host running the
    roles ``ADSITE_ROLES`` names (all three unless ``env`` says otherwise), in a session of its own."""

    def __init__(self, base: Path, redis_url: str, database_url: str, **env: str) -> None:
        self.base = base
        self.port = int(env.pop("PORT", 0)) or free_port()
        self.var = base / "var"
        self.var.mkdir(parents=True, exist_ok=True)
        self.log_path = base / "site.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PORT": str(self.port),
            "ADSITE_VAR_DIR": str(self.var),
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "adsite.settings",
            # the traffic comes from one address at more than the anonymous rate limit (tracking/ratelimit.py)
            "ADSITE_RATE_LIMITS": "0",
            "DJANGO_DEBUG": "1",  # as `make run` serves it
            **env,
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None  # the session's leader (serve.sh, then supervisord)
        self.token = ""
        self._staff_cookie = ""

    def manage(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return done

    def prepare(self) -> None:
        """Migrate, collect static files, seed the demo and its ads, make an API token: in one ``manage.py``
        process (each process start imports Django and the apps again, seconds on a busy host)."""
        done = self.manage("shell", "-c", "from django.core.management import call_command as c; "
                           "c('migrate', interactive=False, verbosity=0); "
                           "c('collectstatic', interactive=False, verbosity=0); "
                           "c('seed_demo'); c('seed_ads'); c('create_api_token', 'faults')")
        self.token = done.stdout.strip().split()[-1]

    @property
    def roles(self) -> list[str]:
        return [r for r in self.env.get("ADSITE_ROLES", "web,worker,beat").split(",") if r]

    def start(self, *, timeout: float = 180) -> None:
        self.launch()
        self.wait_started(timeout)

    def launch(self) -> None:
        """Start ``scripts/serve.sh`` in a session of its own (``wait_started`` waits for its roles)."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["bash", "scripts/serve.sh"], cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid

    def wait_started(self, timeout: float = 180) -> None:
        if "web" in self.roles:
            wait_for(lambda: self.get("/healthz")[0] == 200, timeout=timeout, what="site start", every=0.5)
        if "worker" in self.roles:
            wait_for(lambda: len(self.processes("celery-child")) >= 1, timeout=timeout,
                     what="celery worker start", every=0.5)
        if "beat" in self.roles:
            wait_for(lambda: len(self.processes("beat")) == 1, timeout=timeout, what="celery beat start", every=0.5)

    def session(self) -> int | None:
        """The session this host's processes run in: its leader's pid (started here, or attached by ``pid``)."""
        attached = getattr(self, "pid", None)  # a subclass may set up ``proc`` alone
        return attached if attached is not None else (self.proc.pid if self.proc is not None else None)

    def running(self) -> bool:
        return self.session() is not None and any(p.role != "other" for p in self.processes())

    def processes(self, role: str | None = None) -> list[SiteProcess]:
        session = self.session()
        assert session is not None
        found = _processes_in_session(session)
        return [p for p in found if role is None or p.role == role]

    def stop(self) -> None:
        session = self.session()
        if session is None:
            return
        for proc in self.processes():
            try:
                os.kill(proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        try:
            os.killpg(session, signal.SIGTERM)
            if self.proc is not None:
                self.proc.wait(timeout=30)
            else:  # started by another process (the rehearsal's state file): wait for the session to end
                wait_for(lambda: not self.processes(), timeout=30, what="site stop")
        except (ProcessLookupError, subprocess.TimeoutExpired, TimeoutError):
            pass
        # supervisord's programs lead process groups of their own: whatever of the session is left, one by one
        for proc in self.processes():
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 15.0) -> tuple[int, bytes, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()

    def get(self, path: str, timeout: float = 15.0) -> tuple[int, bytes]:
        status, body, _headers = self.request("GET", path, timeout=timeout)
        return status, body

    def staff_cookie(self) -> str:
        """A staff session's ``Cookie`` header for the dashboard: a superuser ``ops`` is made once and
        logs in through the login form, as an operator does."""
        import re

        if getattr(self, "_staff_cookie", ""):
            return self._staff_cookie
        password = uuid.uuid4().hex
        done = subprocess.run([sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "ops",
                               "--email", "ops@example.org"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**self.env, "DJANGO_SUPERUSER_PASSWORD": password})
        if done.returncode != 0:
            raise RuntimeError(f"createsuperuser failed: {done.stderr[-2000:]}")

        def cookies(response: http.client.HTTPResponse) -> dict[str, str]:
            found = {}
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    found[key.strip()] = rest.split(";", 1)[0]
            return found

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", "/dashboard/login/")
            response = conn.getresponse()
            page = response.read().decode()
            jar = cookies(response)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
            assert token, "no CSRF token on the login page"
            form = urllib.parse.urlencode({"username": "ops", "password": password, "next": "/dashboard/",
                                           "csrfmiddlewaretoken": token.group(1)})
            conn.request("POST", "/dashboard/login/", body=form, headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
                "Referer": f"http://127.0.0.1:{self.port}/dashboard/login/"})
            response = conn.getresponse()
            response.read()
            jar.update(cookies(response))
        finally:
            conn.close()
        assert "sessionid" in jar, f"staff login failed ({response.status})"
        self._staff_cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
        return self._staff_cookie

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_offset(self) -> int:
        return self.log_path.stat().st_size

    def ledger(self) -> dict[str, Any]:
        return dict(json.loads(self.manage("ledger", "--json").stdout))


# --- Traffic ----------------------------------------------------------------------------------------


@dataclass
class Answer:
    at: float  # monotonic time the request was sent
    path: str
    status: int  # 0: no answer (refused, reset, timed out)
    seconds: float
    retry_after: str | None = None


@dataclass
class Batch:
    path: str
    events: list[dict[str, Any]]
    accepted: bool = False


def soak_event(n: int, *, user_id: str) -> dict[str, Any]:
    """The soak's n-th tracker event for ``user_id``: half page views, a quarter engaged pings, a quarter
    clicks, over 30 articles and four categories (the traffic ``Traffic`` and ``benchmarks.memgrowth`` send)."""
    kind = random.choice(("page_view", "page_view", "page_ping", "click"))
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "user_id": user_id,
        "session_id": f"s-{n % 50}",
        "ts": int(time.time() * 1000),
        "url": f"https://example.org/article/{n % 30}",
        "item_id": f"article-{n % 30}",
        "categories": [random.choice(("technology", "sports", "travel", "food-drink"))],
    }
    if kind == "page_ping":
        event["properties"] = {"engaged_ms": 15000}
    return event


@dataclass
class Traffic:
    """Senders posting batches of known events until stopped; unanswered batches are retried."""

    site: Site
    tag: str
    senders: int = 2
    batch_size: int = 20
    pause_s: float = 0.05
    # each sender keeps one connection open between batches, as a browser does; a request on a reused
    # connection that the server closed before answering is sent again at once on a new one (as browsers do)
    # and its time kept in ``reused_connection_retries``
    keep_alive: bool = False
    answers: list[Answer] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    reused_connection_retries: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    def event(self, n: int, *, user: int | None = None) -> dict[str, Any]:
        return soak_event(n, user_id=f"f-{self.tag}-{(n if user is None else user) % 50:02d}")

    def headers(self, path: str, events: Sequence[dict[str, Any]]) -> dict[str, str]:
        """As ``tracker.js`` sends them: ``/collect`` carries the visitor's identity cookie (its events are
        that visitor's); the API carries the service token."""
        headers = {"Content-Type": "application/json", "User-Agent": UA}
        if path == "/api/v1/events":
            headers["Authorization"] = f"Token {self.site.token}"
        elif events:
            headers["Cookie"] = f"adsite_uid={events[0]['user_id']}"
        return headers

    def _exchange(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.site.port, timeout=15)
        reused = conn.sock is not None
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            if not reused:
                raise OSError(str(exc)) from exc
            with self._lock:
                self.reused_connection_retries.append(time.monotonic())
            return self._exchange(path, body, headers)  # on a new connection
        answer_headers = {k.lower(): v for k, v in response.getheaders()}
        if answer_headers.get("connection", "").lower() == "close":
            conn.close()
        return response.status, answer_headers

    def _post(self, batch: Batch) -> None:
        body = json.dumps({"events": batch.events}).encode()
        headers = self.headers(batch.path, batch.events)
        started = time.monotonic()
        try:
            if self.keep_alive:
                status, answer_headers = self._exchange(batch.path, body, headers)
            else:
                status, _body, answer_headers = self.site.request("POST", batch.path, body, headers)
        except OSError:
            status, answer_headers = 0, {}
        answer = Answer(started, batch.path, status, time.monotonic() - started, answer_headers.get("retry-after"))
        with self._lock:
            self.answers.append(answer)
        if 200 <= status < 300:
            batch.accepted = True

    def _run(self, index: int) -> None:
        n = index * 1_000_000
        retry: list[Batch] = []
        while not self._stop.is_set():
            if retry:
                batch = retry.pop(0)
            else:
                path = "/api/v1/events" if n % 5 == 4 else "/collect"
                events = [self.event(n + i, user=n // self.batch_size) for i in range(self.batch_size)]
                n += self.batch_size
                batch = Batch(path, events)
                with self._lock:
                    self.batches.append(batch)
            self._post(batch)
            if not batch.accepted:
                retry.append(batch)
                time.sleep(0.5)  # the tracker backs off before retrying
            time.sleep(self.pause_s)

    def start(self) -> None:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.senders)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def retry_unaccepted(self, *, timeout: float = 120) -> None:
        """After the fault: deliver every batch that never got a 2xx (the tracker keeps them)."""
        deadline = time.monotonic() + timeout
        for batch in self.batches:
            while not batch.accepted and time.monotonic() < deadline:
                self._post(batch)
                if not batch.accepted:
                    time.sleep(0.5)

    # --- figures -------------------------------------------------------------------------------------

    def sent_ids(self) -> set[str]:
        return {event["event_id"] for batch in self.batches for event in batch.events}

    def accepted_ids(self) -> set[str]:
        return {event["event_id"] for batch in self.batches if batch.accepted for event in batch.events}

    def window(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if start <= a.at < end]

    def reconcile(self, database: Database) -> dict[str, Any]:
        rows = database.query(
            "SELECT event_id::text, count(*) FROM tracking_event WHERE user_id LIKE %s GROUP BY event_id",
            (f"f-{self.tag}-%",),
        )
        stored = {row[0] for row in rows}
        sent, accepted = self.sent_ids(), self.accepted_ids()
        return {
            "sent": len(sent),
            "accepted": len(accepted),
            "stored": len(stored),
            "lost": len(accepted - stored),
            "duplicated": sum(1 for row in rows if row[1] > 1),
            "stored_never_sent": len(stored - sent),
            "stored_not_acknowledged": len((stored & sent) - accepted),
            "requests": len(self.answers),
            "http_5xx": sum(1 for a in self.answers if a.status >= 500),
            "http_503": sum(1 for a in self.answers if a.status == 503),
            "no_answer": sum(1 for a in self.answers if a.status == 0),
        }


@dataclass
class AdTraffic:
    """The ads side of the traffic: ad decisions for known visitors (``/api/v1/ads/decisions``, token),
    then, as the visitor each ad was served to (its identity cookie), the viewable-impression beacon of
    every ad served and a click on some of them (a few clicked twice: a double click is a replay, never
    billed twice). Visitors are ``ad-<tag>-NNN``, so the clicks this traffic made are counted by id."""

    site: Site
    tag: str
    visitors: int = 300
    click_share: float = 0.3
    double_click_share: float = 0.2
    pause_s: float = 0.05
    placements: tuple[str, ...] = ("leaderboard", "sidebar")
    answers: list[Answer] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)  # campaign id -> ads this traffic was shown
    decisions_unanswered: int = 0
    clicks: int = 0  # distinct ads clicked
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _get(self, url: str, user: str) -> None:
        path = urllib.parse.urlsplit(url)
        target = path.path + (f"?{path.query}" if path.query else "")
        started = time.monotonic()
        try:
            status, _b, _h = self.site.request("GET", target, headers={"User-Agent": UA, "Cookie": f"adsite_uid={user}"})
        except OSError:
            status = 0
        with self._lock:
            self.answers.append(Answer(started, path.path[:3], status, time.monotonic() - started))

    def _run(self) -> None:
        auth = {"Authorization": f"Token {self.site.token}", "Content-Type": "application/json", "User-Agent": UA}
        rng = random.Random(f"ads-{self.tag}")
        n = 0
        while not self._stop.is_set():
            user = f"ad-{self.tag}-{n % self.visitors:03d}"
            n += 1
            body = json.dumps({"user_id": user, "placements": list(self.placements)}).encode()
            started = time.monotonic()
            try:
                status, raw, _h = self.site.request("POST", "/api/v1/ads/decisions", body, auth)
            except OSError:
                status, raw = 0, b""
            with self._lock:
                self.answers.append(Answer(started, "/api/v1/ads/decisions", status, time.monotonic() - started))
            if status != 200:
                self.decisions_unanswered += 1
                time.sleep(0.5)
                continue
            for placement in json.loads(raw)["placements"]:
                creative = placement.get("creative")
                if creative is None:
                    continue  # the site's built-in house ad: nobody's inventory, nothing counted
                with self._lock:
                    self.seen[int(creative["campaign_id"])] = self.seen.get(int(creative["campaign_id"]), 0) + 1
                self._get(placement["impression_url"], user)
                if rng.random() < self.click_share:
                    self.clicks += 1
                    self._get(placement["click_url"], user)
                    if rng.random() < self.double_click_share:
                        self._get(placement["click_url"], user)
            time.sleep(self.pause_s)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def window(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if start <= a.at < end]


def money_counters(redis_server: RedisServer, prefix: str = "ads:") -> dict[int, dict[str, int]]:
    """campaign id -> the ledger's counters: the hourly report's (``served``, ``imp_billed``,
    ``clk_billed``, ``spend``: what ``manage.py ads_report`` invoices from, summed over the hours kept)
    and ``budget_spend``, the total spend the budget check reads. The keys are the ledger's
    (``adsite/ads/accounting/redis_ledger.py``): ``<prefix>{c<id>}:report:<hour>`` and ``<prefix>{c<id>}:spend`` (field ``t``)."""
    client = redis_server.client()

    def campaign_of(key: bytes) -> int | None:
        tag = key.decode().partition("{c")[2].partition("}")[0]
        return int(tag) if tag.isdigit() else None

    try:
        out: dict[int, dict[str, int]] = {}
        for key in client.scan_iter(match=f"{prefix}{{c*}}:report:*", count=1000):
            campaign = campaign_of(key)
            if campaign is None:
                continue
            row = out.setdefault(campaign, {})
            for name, value in client.hgetall(key).items():
                metric = name.decode()
                row[metric] = row.get(metric, 0) + int(value)
        for key in client.scan_iter(match=f"{prefix}{{c*}}:spend", count=1000):
            campaign = campaign_of(key)
            total = client.hget(key, "t")
            if campaign is not None and total is not None:
                out.setdefault(campaign, {})["budget_spend"] = int(total)
        return out
    finally:
        client.close()


def click_rows_owed(redis_server: RedisServer, prefix: str = "ads:") -> int:
    """How many click rows the ledger billed and the database has yet to be given (``<prefix>clicks:owed``,
    settled by the beat's ``ads.click_rows_settle``)."""
    client = redis_server.client()
    try:
        return int(client.hlen(f"{prefix}clicks:owed"))
    finally:
        client.close()


def click_rows_unsettled(cluster: PostgresCluster) -> int:
    """How many click rows still wait for the ledger's word on a charge whose answer was lost
    (``unsettled``, settled by the beat's ``ads.click_rows_settle`` some seconds later)."""
    return int(cluster.query("SELECT count(*) FROM ads_adclick WHERE outcome = 'unsettled'")[0][0])


def money_reconcile(
    cluster: PostgresCluster, ads: AdTraffic, before: dict[int, dict[str, int]], after: dict[int, dict[str, int]]
) -> dict[str, Any]:
    """What the ads traffic moved, counted three ways that must agree to the micro: the report's spend
    against its billed impressions and clicks at each campaign's price, the budget's spend against the
    report's, and the clicks billed against the click rows (``ads_adclick``) of this traffic's visitors."""
    from decimal import Decimal

    prices = {
        int(cid): (int(Decimal(bid) * 1_000_000) // 1000 if pricing == "cpm" else 0,
                   int(Decimal(bid) * 1_000_000) if pricing == "cpc" else 0)
        for cid, pricing, bid in cluster.query("SELECT id, pricing, bid::text FROM ads_campaign")
    }

    def delta(campaign: int, metric: str) -> int:
        return after.get(campaign, {}).get(metric, 0) - before.get(campaign, {}).get(metric, 0)

    campaigns = sorted(set(after) | set(before))
    spend_mismatch = {}
    budget_mismatch = {}
    for c in campaigns:
        impression_price, click_price = prices.get(c, (0, 0))
        expected = delta(c, "imp_billed") * impression_price + delta(c, "clk_billed") * click_price
        if delta(c, "spend") != expected:
            spend_mismatch[c] = {"spend": delta(c, "spend"), "billed_at_price": expected}
        if delta(c, "budget_spend") != delta(c, "spend"):
            budget_mismatch[c] = {"budget_spend": delta(c, "budget_spend"), "report_spend": delta(c, "spend")}
    rows = cluster.query(
        "SELECT token_id, outcome, price_micros, campaign_id FROM ads_adclick WHERE user_id LIKE %s",
        (f"ad-{ads.tag}-%",),
    )
    billed_rows = [row for row in rows if row[1] == "billed"]
    billed_tokens = [row[0] for row in billed_rows]
    served = sum(delta(c, "served") for c in campaigns)
    return {
        "decisions": sum(1 for a in ads.answers if a.path == "/api/v1/ads/decisions"),
        "decisions_not_200": ads.decisions_unanswered,
        "ads_seen": sum(ads.seen.values()),
        "impressions_served": served,
        "impressions_billed": sum(delta(c, "imp_billed") for c in campaigns),
        "clicks": ads.clicks,
        "click_requests": sum(1 for a in ads.answers if a.path == "/c/"),
        "click_rows": len(rows),
        "clicks_billed": sum(delta(c, "clk_billed") for c in campaigns),
        "click_rows_billed": len(billed_rows),
        "click_rows_unsettled": sum(1 for row in rows if row[1] == "unsettled"),
        "tokens_billed_twice": len(billed_tokens) - len(set(billed_tokens)),
        "click_rows_billed_micros": sum(int(row[2]) for row in billed_rows),
        "clicks_billed_micros": sum(delta(c, "clk_billed") * prices.get(c, (0, 0))[1] for c in campaigns),
        "spend_micros": sum(delta(c, "spend") for c in campaigns),
        "spend_mismatch": spend_mismatch,
        "budget_mismatch": budget_mismatch,
        "ads_5xx": sum(1 for a in ads.answers if a.status >= 500),
        "ads_no_answer": sum(1 for a in ads.answers if a.status == 0),
    }


def latency_summary(answers: Sequence[Answer]) -> dict[str, Any]:
    if not answers:
        return {"requests": 0}
    seconds = sorted(a.seconds for a in answers)
    statuses: dict[str, int] = {}
    for a in answers:
        statuses[str(a.status)] = statuses.get(str(a.status), 0) + 1
    return {
        "requests": len(answers),
        "p50_ms": round(seconds[len(seconds) // 2] * 1000, 1),
        "p99_ms": round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))] * 1000, 1),
        "worst_ms": round(seconds[-1] * 1000, 1),
        "statuses": statuses,
    }


def stream_drained(redis_server: RedisServer) -> bool:
    client = redis_server.client()
    try:
        return int(client.xlen("adsite:events")) == 0
    finally:
        client.close()


# --- The whole stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    base: Path
    redis: RedisServer
    postgres: PostgresCluster
    site: Site
    started_s: float


@contextlib.contextmanager
def stack_up(*, keep: bool = False, start_timeout_s: float = 180, **site_env: str) -> Iterator[Stack]:
    """Redis (AOF), a PostgreSQL cluster and the site on top, all of their own; torn down at the end
    (the temporary directory too, unless ``keep``)."""
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="adsite-stack-"))
    os.chmod(base, 0o755)
    redis_server = RedisServer(base)
    postgres = PostgresCluster(base)
    site = Site(base, redis_server.url, postgres.url, **site_env)
    try:
        redis_server.start()
        postgres.init()
        site.prepare()
        site.start(timeout=start_timeout_s)
        yield Stack(base, redis_server, postgres, site, time.monotonic() - started)
    finally:
        site.stop()
        redis_server.stop()
        if postgres.running():
            try:
                postgres.stop("fast")
            except Exception:
                pass
        if not keep:
            shutil.rmtree(redis_server.dir, ignore_errors=True)
            shutil.rmtree(base, ignore_errors=True)


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
