"""Why the Celery pool process's resident memory rises, then stays flat (the soak, docs/reliability.md).

``python -m benchmarks.pool_memory [--backlogs 5,10,20,20] [--out var/soak/pool-memory.json]`` starts a stack of
its own (``benchmarks.stack``), warms the worker with soak-like traffic (batches of 20 events every ~0.1 s, one
flush a second), then makes the pool process flush ever larger backlogs, as it did in the soak when it fell
behind on the shared cores: the pool process is stopped (SIGSTOP) while two senders write for N seconds, then
let go, and it flushes the backlog in batches of up to ``TRACKING["FLUSH_BATCH"]`` (5,000) entries. After
each phase it samples the pool process's resident memory and, from ``/proc/PID/smaps``, the part in the C
heap (``[heap]``, glibc malloc's main arena) and in anonymous mappings (Python's object arenas, other malloc
arenas, torch). At the end it asks glibc, in the pool process, to give back the free memory it holds
(``malloc_trim(0)`` called through ``gdb -p``) and samples again: what the rise was that malloc gives back is
freed memory the allocator kept (its high-water mark), not live objects; what it does not give back is live,
or fragmented around live allocations.

Needs ``gdb`` and the right to attach to the process (root, or ``ptrace_scope`` 0); without them the trim is
skipped and said so. Every event is counted by id at the end, as the battery does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.stack import Stack, Traffic, stack_up, stream_drained, wait_for


def _smaps(pid: int) -> dict[str, Any]:
    """Resident MiB of the process: in all, in ``[heap]``, in other anonymous mappings, in file mappings."""
    rss = {"heap": 0, "anon": 0, "file": 0}
    by_file: dict[str, int] = {}
    kind, name = "file", ""
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            name = head[5] if len(head) > 5 else ""
            kind = "heap" if name == "[heap]" else ("file" if name.startswith("/") else "anon")
        elif line.startswith("Rss:"):
            rss[kind] += int(head[1])
            if kind == "file":
                by_file[name] = by_file.get(name, 0) + int(head[1])
    top = sorted(by_file.items(), key=lambda item: -item[1])[:12]
    return {"rss_mib": round(sum(rss.values()) / 1024, 1), "heap_mib": round(rss["heap"] / 1024, 1),
            "anon_mib": round(rss["anon"] / 1024, 1), "file_mib": round(rss["file"] / 1024, 1),
            "files_mib": {Path(path).name: round(kib / 1024, 1) for path, kib in top}}


def _pool(stack: Stack) -> list[int]:
    return sorted(p.pid for p in stack.site.processes("celery-child"))


def _sample(stack: Stack, phase: str, samples: list[dict[str, Any]], **extra: Any) -> None:
    for pid in _pool(stack):
        row = {"phase": phase, "pid": pid, "at_s": round(time.monotonic() - T0, 1), **_smaps(pid), **extra}
        samples.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)


def malloc_trim(pid: int) -> str:
    """Call glibc's ``malloc_trim(0)`` in ``pid`` (gdb attaches, calls, detaches); gdb's answer, or why not."""
    gdb = shutil.which("gdb")
    if not gdb:
        return "skipped: no gdb"
    done = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "call (int) malloc_trim(0)", "-ex", "detach"],
                          capture_output=True, text=True, timeout=120, check=False)
    answer = [line for line in done.stdout.splitlines() if line.startswith("$1")]
    return answer[0] if answer else f"failed (rc {done.returncode}): {done.stderr.strip()[-300:]}"


T0 = time.monotonic()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm-seconds", type=float, default=60)
    parser.add_argument("--backlogs", default="5,10,20,20", help="seconds of writing while the pool is stopped")
    parser.add_argument("--out", type=Path, default=Path("var/soak/pool-memory.json"))
    args = parser.parse_args()
    samples: list[dict[str, Any]] = []
    with stack_up(TRACKING_FLUSH_SECONDS="1", LOG_LEVEL="WARNING") as stack:
        site = stack.site
        _sample(stack, "started", samples)
        soak = Traffic(site, "poolmem", senders=1, batch_size=20, pause_s=0.1)
        soak.start()
        time.sleep(args.warm_seconds)
        _sample(stack, f"soak-like traffic {args.warm_seconds:.0f} s", samples)
        burst_traffic: list[Traffic] = []
        for seconds in (float(s) for s in args.backlogs.split(",")):
            children = _pool(stack)
            for pid in children:
                os.kill(pid, signal.SIGSTOP)
            burst = Traffic(site, f"poolmem{len(burst_traffic)}", senders=2, batch_size=50, pause_s=0.0)
            burst.start()
            time.sleep(seconds)
            burst.stop()
            burst_traffic.append(burst)
            client = stack.redis.client()
            backlog = int(client.xlen("adsite:events"))
            client.close()
            for pid in children:
                os.kill(pid, signal.SIGCONT)
            wait_for(lambda: stream_drained(stack.redis), timeout=600, what="backlog flushed", every=0.5)
            _sample(stack, f"backlog of {backlog} entries flushed", samples, backlog=backlog)
        soak.stop()
        time.sleep(5)
        _sample(stack, "idle", samples)
        trimmed = {pid: malloc_trim(pid) for pid in _pool(stack)}
        time.sleep(1)
        _sample(stack, "after malloc_trim(0)", samples, malloc_trim=trimmed)
        counts = [t.reconcile(stack.postgres) for t in (soak, *burst_traffic)]
    report: dict[str, Any] = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_average_end": [round(x, 1) for x in os.getloadavg()],
        "samples": samples,
        "events": {key: sum(int(c[key]) for c in counts) for key in ("sent", "accepted", "lost", "duplicated")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("| phase | RSS MiB | [heap] MiB | other anonymous MiB | file-backed MiB |\n|---|---|---|---|---|")
    for row in samples:
        print(f"| {row['phase']} | {row.get('rss_mib')} | {row.get('heap_mib')} | {row.get('anon_mib')} "
              f"| {row.get('file_mib')} |")
    print(f"events: {report['events']}; load average at the end {report['load_average_end']}")
    return 1 if report["events"]["lost"] or report["events"]["duplicated"] else 0


if __name__ == "__main__":
    sys.exit(main())
