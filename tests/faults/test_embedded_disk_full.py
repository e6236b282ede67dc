"""Embedded mode with its disk full: the SQLite file on a small tmpfs of its own, filled while traffic flows.

Promise: a batch the database cannot write is answered 503 (the tracker keeps it and retries), never
500 and never 202-then-lost; once space is back the retries are stored once each, and the SQLite file
passes ``PRAGMA integrity_check``. Needs root (or a user allowed to mount tmpfs): skipped otherwise.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.stack import ROOT, Site, Traffic, free_port, latency_summary, wait_for

pytestmark = [pytest.mark.faults]


@pytest.fixture
def small_disk() -> Iterator[Path]:
    if os.environ.get("ADSITE_FAULTS") != "1":
        pytest.skip("the fault battery runs under `make test-faults` (ADSITE_FAULTS=1)")
    mount = Path(tempfile.mkdtemp(prefix="adsite-diskfull-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


class EmbeddedSite(Site):
    """The site in embedded mode (SQLite under ``var``), started by ``scripts/serve.sh`` like ``make run``."""

    def __init__(self, var: Path) -> None:
        self.base = var
        self.port = free_port()
        self.var = var
        self.log_path = var.parent / f"{var.name}-site.log"
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL",
                                                                      "PROMETHEUS_MULTIPROC_DIR")}
        self.env.update(PORT=str(self.port), ADSITE_VAR_DIR=str(var), PYTHONUNBUFFERED="1", ADSITE_RATE_LIMITS="0", DJANGO_DEBUG="1",
                        ADSITE_WEB_THREADS="4", DJANGO_SETTINGS_MODULE="adsite.settings")
        self.proc = None
        self.token = ""

    def prepare(self) -> None:
        done = self.manage("shell", "-c", "from django.core.management import call_command as c; "
                           "c('migrate', interactive=False, verbosity=0); c('create_api_token', 'faults')")
        self.token = done.stdout.strip().split()[-1]

    def start(self, *, timeout: float = 180) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["bash", "scripts/serve.sh"], cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.get("/healthz")[0] == 200, timeout=timeout, what="embedded site start", every=0.5)


def _fill(path: Path) -> int:
    """Write zeros into ``path`` until the file system is full; return the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as filler:
        while True:
            try:
                written += filler.write(chunk)
            except OSError:
                break
        try:
            while True:
                written += filler.write(b"\0" * 512)
        except OSError:
            pass
    return written


def test_disk_full_under_sqlite_answers_503_then_stores_every_retry_once_without_corruption(
    small_disk: Path, record: Any
) -> None:
    var = small_disk / "var"
    var.mkdir()
    site = EmbeddedSite(var)
    site.prepare()
    site.start()
    try:
        traffic = Traffic(site, "diskfull", senders=2, batch_size=20)
        traffic.start()
        time.sleep(3)
        fault_at = time.monotonic()
        filled = _fill(small_disk / "filler")
        time.sleep(6)
        (small_disk / "filler").unlink()
        recovered_at = time.monotonic()
        time.sleep(4)
        traffic.stop()
        traffic.retry_unaccepted()
    finally:
        site.stop()
    during = traffic.window(fault_at, recovered_at)
    with sqlite3.connect(var / "adsite.sqlite3") as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        rows = db.execute(
            "SELECT event_id, count(*) FROM tracking_event WHERE user_id LIKE 'f-diskfull-%' GROUP BY event_id"
        ).fetchall()
    stored = {str(row[0]) for row in rows}
    accepted = {e.replace("-", "") for e in traffic.accepted_ids()}
    sent = {e.replace("-", "") for e in traffic.sent_ids()}
    figures = {
        "sent": len(sent),
        "accepted": len(accepted),
        "stored": len(stored),
        "lost": len(accepted - stored),
        "duplicated": sum(1 for row in rows if row[1] > 1),
        "stored_never_sent": len(stored - sent),
        "filler_mib": round(filled / 2**20, 1),
        "during": latency_summary(during),
        "http_5xx": sum(1 for a in traffic.answers if a.status >= 500),
        "http_503": sum(1 for a in traffic.answers if a.status == 503),
        "no_answer": sum(1 for a in traffic.answers if a.status == 0),
        "integrity_check": integrity,
    }
    record("embedded_sqlite_disk_full", figures)
    assert integrity == "ok", figures
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["stored_never_sent"] == 0, figures
    assert figures["accepted"] == figures["sent"], figures
    assert figures["http_5xx"] == figures["http_503"], figures  # 503 only, never 500
    assert figures["no_answer"] == 0, figures
    assert figures["http_503"] > 0, figures  # the fault did reach the database
