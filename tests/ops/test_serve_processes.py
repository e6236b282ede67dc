"""``scripts/serve.sh`` in services mode, started as `make run` starts it (granian web, Celery worker and beat
under supervisord), against the test database and the services-mode Redis.

What a visitor would notice: clients that send a request body slowly (or never) do not stall the site, and
a Celery worker killed outright does not take the web down with it; supervisord starts it again on its own.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.requires_redis, pytest.mark.requires_postgres]

START_TIMEOUT_S = 180  # a web worker loads Django and warms its predictor before it binds (slow on a busy host)


@dataclass
class Site:
    port: int
    var: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def supervisorctl(self, *args: str) -> str:
        out = subprocess.run([str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(self.var / "supervisord.conf"),
                              *args], capture_output=True, text=True, timeout=30)
        return out.stdout.strip()

    def get(self, path: str, timeout: float = 5.0) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def site(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    var = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": str(settings.REDIS_URL), "PORT": str(port),
           "WEB_CONCURRENCY": "2", "ADSITE_VAR_DIR": str(var), "ADSITE_WORKER_NAME": f"serve-test-{port}",
           "DJANGO_SETTINGS_MODULE": "adsite.settings", "LOG_LEVEL": "WARNING"}
    log = var / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ROOT / "scripts" / "serve.sh")], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    site = Site(port, var, proc, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if site.get("/healthz") == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve.sh did not serve /healthz: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield site
    finally:
        proc.send_signal(signal.SIGTERM)  # supervisord stops every program
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _slow_body(port: int, path: str) -> socket.socket:
    """A connection that declares a 1,000-byte body and sends 9 bytes of it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 1000\r\n\r\n".encode() + b'{"events"')
    return sock


def test_slow_body_clients_do_not_stall_the_site(site: Site) -> None:
    # three times as many slow bodies as there are web worker processes
    stalled = [_slow_body(site.port, "/collect") for _ in range(6)]
    try:
        time.sleep(0.5)
        statuses = []
        for _ in range(20):
            statuses.append(site.get("/healthz", timeout=5))
        assert statuses == [200] * 20
        # a slow body that does arrive in the end is answered like any other
        last = stalled[0]
        last.sendall(b": []}" + b" " * (1000 - 9 - 5))
        reply = last.recv(4096).decode()
        assert reply.startswith("HTTP/1.1 202"), reply[:200]
    finally:
        for sock in stalled:
            sock.close()


def test_oversized_body_is_refused_before_it_is_read(site: Site) -> None:
    sock = socket.create_connection(("127.0.0.1", site.port), timeout=5)
    try:
        sock.sendall(b"POST /collect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 1000000000\r\n\r\n")
        assert sock.recv(4096).decode().startswith("HTTP/1.1 413")
    finally:
        sock.close()


def test_killed_celery_worker_is_restarted_alone_while_the_web_answers(site: Site) -> None:
    from adsite.celery import app

    before = int(site.supervisorctl("pid", "worker"))
    web_before = site.supervisorctl("pid", "web")
    os.kill(before, signal.SIGKILL)
    statuses = []
    deadline = time.monotonic() + 60
    after = before
    while time.monotonic() < deadline:
        statuses.append(site.get("/healthz", timeout=5))
        pid = site.supervisorctl("pid", "worker")
        if pid.isdigit() and int(pid) not in (0, before) and "RUNNING" in site.supervisorctl("status", "worker"):
            after = int(pid)
            break
        time.sleep(0.25)
    assert after != before, site.supervisorctl("status")
    assert statuses and set(statuses) == {200}
    assert site.supervisorctl("pid", "web") == web_before  # the web was never restarted
    # the new worker takes tasks again
    name = f"serve-test-{site.port}@{socket.gethostname()}"
    replies: list[dict[str, object]] = []
    deadline = time.monotonic() + 60
    while not replies and time.monotonic() < deadline:
        replies = app.control.ping(destination=[name], timeout=2.0) or []
    assert replies, f"{name} did not answer a ping"
    assert site.get("/healthz") == 200


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the field after the state is the parent's pid
            out.add(int(stat.parent.name))
    return out


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def test_killed_web_process_is_replaced_while_the_other_answers(site: Site) -> None:
    web = int(site.supervisorctl("pid", "web"))
    workers = _children(web)
    assert len(workers) == 2, workers
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    # a connection the killed process held (in flight, or queued on its listening socket) is reset: that
    # much a SIGKILL costs; connections made after it go to the surviving process
    time.sleep(0.5)
    statuses = []
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        statuses.append(site.get("/healthz", timeout=5))
        now = _children(web)
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.25)
    assert len(_children(web)) == 2 and victim not in _children(web)
    assert set(statuses) == {200}  # the surviving process answered meanwhile
    assert int(site.supervisorctl("pid", "web")) == web  # granian replaced its worker; nothing else restarted


def test_killed_web_main_process_is_restarted_and_its_workers_go_with_it(site: Site) -> None:
    web = int(site.supervisorctl("pid", "web"))
    old_workers = _children(web)
    os.kill(web, signal.SIGKILL)
    deadline = time.monotonic() + START_TIMEOUT_S
    answered = False
    while time.monotonic() < deadline:
        pid = site.supervisorctl("pid", "web")
        if pid.isdigit() and int(pid) not in (0, web) and len(_children(int(pid))) == 2:
            try:
                answered = site.get("/healthz") == 200
            except OSError:
                answered = False
            if answered:
                break
        time.sleep(0.5)
    assert answered, site.supervisorctl("status")
    # no worker of the killed main process is left serving beside the new ones (a zombie, exited but not
    # yet reaped by its new parent, serves nothing)
    left = {pid: _state(pid) for pid in old_workers}
    assert not {pid: st for pid, st in left.items() if st not in ("", "Z", "X")}, left
