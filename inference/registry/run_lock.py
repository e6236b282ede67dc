"""One training run at a time: the lock, its lease and the runs whose process died.

The lock is a cache key (Redis in services mode) whose value names the process that holds it
(``<host>-<pid>|<token>``). It is a lease of ``LEASE_SECONDS``: the running process renews it every
``LEASE_SECONDS / 4`` from a thread of its own (``RunLease``), so a process that dies stops renewing it and
the lock lapses. ``training_runs_abandoned_fail`` (run before every training and whenever the runs are read
through ``inference.api``) records a ``running`` run whose process is gone as ``failed``: at once when its
process is gone from this host (and frees its lock), else once its lease has lapsed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from django.core.cache import cache
from django.utils import timezone

from inference.registry.models import TrainingRun

__all__ = ["LEASE_SECONDS", "LOCK_KEY", "RunLease", "runner_name", "training_runs_abandoned_fail"]

logger = logging.getLogger(__name__)

LOCK_KEY = "inference:training:lock"
LEASE_SECONDS = 60  # the lock's lifetime, renewed by the running process every quarter of it


class RunLease:
    """The training lock held by this process: ``RunLease.acquire()`` takes it (None when another run holds
    it) and renews it from a daemon thread while the run goes on; ``release()`` stops renewing and frees it
    if still held."""

    def __init__(self, runner: str, token: str) -> None:
        self.runner = runner
        self.token = token
        self.value = f"{runner}|{token}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="adsite-training-lease", daemon=True)

    @classmethod
    def acquire(cls) -> RunLease | None:
        lease = cls(runner_name(), uuid.uuid4().hex)
        if not cache.add(LOCK_KEY, lease.value, timeout=LEASE_SECONDS):
            return None
        lease._thread.start()
        return lease

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 4):
            try:
                if cache.get(LOCK_KEY) == self.value:
                    cache.touch(LOCK_KEY, LEASE_SECONDS)
            except Exception as exc:  # the cache is away for a moment: the lease has 3/4 of its time left
                logger.warning("inference.training_lease_not_renewed: %s", type(exc).__name__)

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)  # wakes at once, unless a cache call is under way
        if cache.get(LOCK_KEY) == self.value:
            cache.delete(LOCK_KEY)


def runner_name() -> str:
    """This process, as a run names it: ``<host>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _process_gone(runner: str) -> bool:
    """Whether ``runner`` (``<host>-<pid>``) names a process of this host that no longer exists."""
    host, _, pid = runner.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's process: only its lease can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def training_runs_abandoned_fail() -> list[int]:
    """Record as ``failed`` every ``running`` run whose process is gone; return their ids.

    A run is abandoned when the lock no longer holds its value (the lease lapsed: its process stopped
    renewing it) or when its process was on this host and no longer exists (then at once, and its lock
    is freed). The error says which process ran it, the stage it had reached and why it was given up.
    """
    try:
        holder = cache.get(LOCK_KEY)
    except Exception:  # without the lock's state nothing can be judged; the next call will
        return []
    failed = []
    for run in TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING):
        runner, lock = str(run.options.get("runner", "")), str(run.options.get("lock", ""))
        holds_lock = bool(lock) and holder == f"{runner}|{lock}"
        gone = bool(runner) and _process_gone(runner)
        if holds_lock and not gone:
            continue
        why = "its process no longer exists" if gone else f"its lease lapsed (not renewed for {LEASE_SECONDS} s)"
        run.status = TrainingRun.Status.FAILED
        run.error = (
            f"abandoned: the process that ran it ({runner or 'unknown'}) stopped during stage "
            f"'{run.stage}' at {run.percent:.0f}% (killed or crashed): {why}. Nothing of this run was "
            "registered; the active versions serve on."
        )
        run.message = f"failed: process {runner or 'unknown'} died during {run.stage} ({run.percent:.0f}%)"[:255]
        run.finished_at = timezone.now()
        if TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(
            status=run.status, error=run.error, message=run.message, finished_at=run.finished_at
        ):
            failed.append(run.pk)
            logger.warning("inference.training_abandoned run=%s runner=%s stage=%s: %s", run.pk, runner,
                           run.stage, why)
        if holds_lock and gone:
            cache.delete(LOCK_KEY)
    return failed
