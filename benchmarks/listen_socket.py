"""The listening sockets of ``adsite/ops/granian_server.py`` (what ``make run`` serves with: one ``SO_REUSEPORT``
socket per worker, all held by granian's main process, new connections steered to the warm workers) against
granian's stock Linux setup (each worker opens its own ``SO_REUSEPORT`` socket), rounds interleaved:

    python -m benchmarks.listen_socket

The same stand-in application (tests/ops/granian_slow_app.py: ``SLOW_APP_CPU_MS`` of computing per request,
default 2, on the worker's one thread), 2 workers each, wrk with 8 and 64 keep-alive connections for
``BENCH_SECONDS`` (default 5) per round, ``BENCH_ROUNDS`` rounds (default 3), the order alternating. Printed:
the median over the rounds of requests/s, p50 and p99, with the load average, and how the 8 connections of
each round fell to the two workers. What it shows is the cost (or not) of the sockets' arrangement; the
site's own figures are docs/reliability.md's knee.

Then ``BENCH_SPLITS`` times (default 30) for each server: wrk opens 8 keep-alive connections at once for 1 s, and
how they fell to the two workers is counted (``benchmarks.peer.worker_connections``): ``8`` is every connection
on one worker, the other idle. A worker answers only the connections it accepted, so the split decides how
deep each worker's queue is for a client holding a few connections (a connection pool, the benchmarks' wrk).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.load import run_load
from benchmarks.peer import connection_split, split_text
from benchmarks.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
SPLITS = int(os.environ.get("BENCH_SPLITS", "30"))
SPLIT_KINDS = ("4+4", "5+3", "6+2", "7+1", "8")
KINDS = {
    "sockets held by the main process (granian_server)": [sys.executable, "-m", "adsite.ops.granian_server"],
    "SO_REUSEPORT per worker (stock granian)": [str(Path(sys.executable).parent / "granian")],
}



def _start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'ops'}", "SLOW_APP_START_S": "0",
           "SLOW_APP_CPU_MS": os.environ.get("SLOW_APP_CPU_MS", "2")}
    env.pop("ADSITE_WEB_READY_DIR", None)
    proc = subprocess.Popen([*command, "--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port), "--workers",
                             "2", "--log-level", "warning", "granian_slow_app:app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            run_load(port=port, path="/", clients=1, seconds=0.2, warmup=0)
            return proc
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def main() -> None:
    ports = {kind: free_port() for kind in KINDS}
    procs = {kind: _start(command, ports[kind]) for kind, command in KINDS.items()}
    figures: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    splits: dict[str, list[list[int]]] = {kind: [] for kind in KINDS}  # each 8-connection round's split
    tries: dict[str, dict[str, int]] = {kind: dict.fromkeys(SPLIT_KINDS, 0) for kind in KINDS}
    try:
        for round_no in range(ROUNDS):
            order = list(KINDS) if round_no % 2 == 0 else list(reversed(KINDS))
            for clients in (8, 64):
                for kind in order:
                    with connection_split(ports[kind], after_s=1.0 + SECONDS / 2) as split:
                        result = run_load(port=ports[kind], path="/", clients=clients, seconds=SECONDS, warmup=0.5)
                    figures.setdefault((kind, clients), []).append((result.rps, result.p50_ms, result.p99_ms))
                    if clients == 8:
                        splits[kind].append(split)
        for n in range(SPLITS):
            for kind in KINDS if n % 2 == 0 else reversed(KINDS):
                with connection_split(ports[kind], after_s=0.5) as split:
                    run_load(port=ports[kind], path="/", clients=8, seconds=1, warmup=0)
                seen = split_text([split])
                tries[kind][seen] = tries[kind].get(seen, 0) + 1
    finally:
        for proc in procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"| server | connections | req/s | p50 ms | p99 ms |  (median of {ROUNDS} rounds, load average {load})")
    for (kind, clients), rows in figures.items():
        rps, p50, p99 = (statistics.median(r[i] for r in rows) for i in range(3))
        each = f" (connections per worker {split_text(splits[kind])})" if clients == 8 else ""
        print(f"| {kind} | {clients}{each} | {rps:,.0f} | {p50:.1f} | {p99:.1f} |")
    outcomes = list(dict.fromkeys(o for seen in tries.values() for o in seen))  # SPLIT_KINDS, then any other
    print(f"\n| server ({SPLITS} tries of 8 connections over 2 workers) | " + " | ".join(outcomes) + " |")
    for kind, counts in tries.items():
        print(f"| {kind} | " + " | ".join(str(counts.get(o, 0)) for o in outcomes) + " |")


if __name__ == "__main__":
    main()
