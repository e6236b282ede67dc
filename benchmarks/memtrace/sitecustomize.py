"""Allocation tracing for the soak (``scripts/soak.sh MINUTES --tracemalloc``): imported by every Python
process the soak starts, because the soak puts this directory first on ``PYTHONPATH``.

Each process (and each child forked from it: granian's web workers, Celery's pool process) starts
``tracemalloc`` and, every ``ADSITE_TRACEMALLOC_EVERY_S`` seconds, writes to
``$ADSITE_TRACEMALLOC_DIR/<pid>.txt`` its traced total and the allocation sites that grew most since
its first snapshot (taken after one period, i.e. after warm-up). Not for production: tracing costs CPU
and memory of its own.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc

_DIR = os.environ.get("ADSITE_TRACEMALLOC_DIR", "")
_EVERY = float(os.environ.get("ADSITE_TRACEMALLOC_EVERY_S", "60"))


def _role() -> str:
    return " ".join(sys.argv)[:160]


def _watch() -> None:
    pid = os.getpid()
    path = os.path.join(_DIR, f"{pid}.txt")
    first: tracemalloc.Snapshot | None = None
    started = time.monotonic()
    while True:
        time.sleep(_EVERY)
        if os.getpid() != pid:  # a forked child's copy of this thread does not exist; defensive
            return
        snapshot = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__))
        )
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"## pid {pid} t={time.monotonic() - started:.0f}s traced={current / 2**20:.1f} MiB "
                 f"peak={peak / 2**20:.1f} MiB argv={_role()}"]
        if first is None:
            first = snapshot
        else:
            for stat in snapshot.compare_to(first, "traceback")[:12]:
                lines.append(f"{stat.size_diff / 1024:+.0f} KiB {stat.count_diff:+d} blocks "
                             f"(now {stat.size / 1024:.0f} KiB)")
                lines.extend(f"    {line}" for line in stat.traceback.format(limit=6)[-12:])
        with open(path, "a") as out:
            out.write("\n".join(lines) + "\n\n")


def _start() -> None:
    threading.Thread(target=_watch, name="adsite-tracemalloc", daemon=True).start()


# the site's long-lived processes only: manage.py commands (migrate, seed data) would only be slowed
if _DIR and not sys.argv[0].endswith("manage.py"):
    tracemalloc.start(6)
    _start()
    os.register_at_fork(after_in_child=_start)
