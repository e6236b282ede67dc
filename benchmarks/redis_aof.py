"""What Redis's AOF fsync policy promises when its process is killed, measured: acknowledged writes lost per
SIGKILL, and what a write round trip costs, for ``appendfsync everysec`` and ``appendfsync always``.

``python -m benchmarks.redis_aof [--kills 12] [--quiet-disk] [--out var/redis_aof/last-run.json]``

- **Kills.** For each policy in turn (kills interleaved): a ``redis-server`` of its own (spare port,
  temporary directory, ``appendonly yes``), one client ``INCR``-ing a counter as fast as answers come back
  (its last answer is the count Redis acknowledged), ``SIGKILL`` after 0.5-1.5 s, a restart from the AOF,
  the counter read back. Acknowledged minus kept is what the kill took back; -1 is a write Redis applied
  whose answer died with it, not a loss. Unless ``--quiet-disk``, three shell loops keep the disk busy
  meanwhile (``dd`` of 1 GB then ``sync``, in the temporary directory), as a shared CI host's neighbours do:
  that is when ``everysec`` holds back its AOF write while the background fsync is slow, and goes on replying.
- **Cost.** ``redis-benchmark`` (8 clients, ``INCR``) against each policy, rounds interleaved, on the busy
  disk (4,000 requests a round) and then on the quiet one (40,000): requests/s and p50.

The figures and what the README recommends from them are in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import redis

from benchmarks.stack import ROOT, RedisServer

POLICIES = ("everysec", "always")


def _taken_back(server: RedisServer) -> int:
    """One kill: acknowledged minus kept (the counter is set to what was acknowledged for the next one)."""
    server.start()
    client = server.client(timeout=10)
    acknowledged = [int(client.get("n") or 0)]
    stop = threading.Event()

    def writer() -> None:
        own = redis.Redis(port=server.port, socket_timeout=10)
        while not stop.is_set():
            try:
                acknowledged[0] = int(own.incr("n"))
            except redis.RedisError:
                return

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(random.uniform(0.5, 1.5))
    server.kill()
    stop.set()
    thread.join(timeout=30)
    server.start()
    client = server.client(timeout=10)
    kept = int(client.get("n") or 0)
    client.set("n", acknowledged[0])
    server.kill()
    return acknowledged[0] - kept


@contextmanager
def _busy_disk(where: Path, writers: int = 3) -> Iterator[None]:
    loops = [
        subprocess.Popen(
            ["bash", "-c", f"while :; do dd if=/dev/zero of={where}/busy{i} bs=1M count=1000 2>/dev/null; sync; done"],
            start_new_session=True,
        )
        for i in range(writers)
    ]
    try:
        time.sleep(3)  # let the dirty pages pile up
        yield
    finally:
        for loop in loops:
            os.killpg(loop.pid, signal.SIGKILL)
            loop.wait()
        for i in range(writers):
            (where / f"busy{i}").unlink(missing_ok=True)


def _incr_cost(server: RedisServer, requests: int) -> dict[str, float]:
    binary = shutil.which("redis-benchmark")
    assert binary, "redis-benchmark is not installed"
    out = subprocess.run(
        [binary, "-p", str(server.port), "-c", "8", "-n", str(requests), "-t", "incr", "-q"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout
    found = re.search(r"INCR: ([\d.]+) requests per second, p50=([\d.]+) msec", out.replace("\r", "\n"))
    assert found, out
    return {"requests_per_s": float(found.group(1)), "p50_ms": float(found.group(2))}


def _cost_rounds(
    servers: dict[str, RedisServer], rounds: int, requests: int, disk: str
) -> dict[str, list[dict[str, float]]]:
    cost: dict[str, list[dict[str, float]]] = {policy: [] for policy in servers}
    for server in servers.values():
        if server.proc is None or server.proc.poll() is not None:
            server.start()
    for round_ in range(rounds):
        for policy, server in servers.items():
            cost[policy].append(_incr_cost(server, requests))
        print(f"cost on the {disk} disk, round {round_ + 1}/{rounds}: "
              + ", ".join(f"{p} {cost[p][-1]['requests_per_s']:.0f} req/s" for p in servers), flush=True)
    return cost


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=12, help="kills per policy")
    parser.add_argument("--quiet-disk", action="store_true", help="no disk writers during the kills")
    parser.add_argument("--rounds", type=int, default=3, help="redis-benchmark rounds per policy")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "redis_aof" / "last-run.json")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="adsite-redis-aof-"))
    servers = {policy: RedisServer(base / policy, policy, in_memory=False) for policy in POLICIES}
    taken_back: dict[str, list[int]] = {policy: [] for policy in POLICIES}
    cost: dict[str, dict[str, list[dict[str, float]]]] = {}
    try:
        with _busy_disk(base) if not args.quiet_disk else nullcontext():
            for kill in range(args.kills):
                for policy in POLICIES:
                    taken_back[policy].append(_taken_back(servers[policy]))
                print(f"kill {kill + 1}/{args.kills}: "
                      + ", ".join(f"{p} took back {taken_back[p][-1]}" for p in POLICIES), flush=True)
            if not args.quiet_disk:
                cost["busy"] = _cost_rounds(servers, args.rounds, 4_000, "busy")
        cost["quiet"] = _cost_rounds(servers, args.rounds, 40_000, "quiet")
    finally:
        for server in servers.values():
            if server.proc is not None and server.proc.poll() is None:
                server.kill()
        shutil.rmtree(base, ignore_errors=True)

    report: dict[str, Any] = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "busy_disk": not args.quiet_disk,
        "policies": {
            policy: {
                "kills": len(taken_back[policy]),
                "kills_that_lost_acknowledged_writes": sum(1 for n in taken_back[policy] if n > 0),
                "acknowledged_writes_lost": sum(n for n in taken_back[policy] if n > 0),
                "taken_back_per_kill": taken_back[policy],
                **{
                    f"incr_{disk}_disk_{figure}_median": _median([c[figure] for c in rounds[policy]])
                    for disk, rounds in cost.items()
                    for figure in ("requests_per_s", "p50_ms")
                },
            }
            for policy in POLICIES
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["policies"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
