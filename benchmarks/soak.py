"""The soak: mixed traffic for N minutes against a stack of its own, sampled each minute for leaks.

``scripts/soak.sh MINUTES [OUT.json]`` (not in CI). Starts its own Redis (AOF), PostgreSQL cluster and
the site in services mode (``benchmarks.stack``), then drives, for MINUTES:

- tracker batches (``/collect``) and server-to-server batches (``/api/v1/events``) of known events;
- reads: article pages, interests (``GET /api/v1/users/{id}/interests``) and ad decisions
  (``POST /api/v1/ads/decisions``) for the same visitors;

and every minute samples the resident memory of every process of the site, Redis and PostgreSQL, the
connections open to PostgreSQL and Redis, Redis's memory, the stream's length and the events table
(rows, bytes). At the end it counts the events by id (sent / accepted / stored / lost) and writes the
samples, the count and the first-to-last drift of each series as JSON, and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.stack import Stack, Traffic, latency_summary, rss_kib, stack_up, stream_drained, wait_for


def _reads(stack: Stack, stop: threading.Event, answers: list[tuple[str, int, float]], tag: str) -> None:
    site = stack.site
    auth = {"Authorization": f"Token {site.token}", "Content-Type": "application/json"}
    placements = ["leaderboard", "sidebar"]
    while not stop.is_set():
        user = f"f-{tag}-{random.randrange(50):02d}"
        choice = random.random()
        started = time.monotonic()
        try:
            if choice < 0.4:
                status, _b, _h = site.request("GET", f"/api/v1/users/{user}/interests?top=5", headers=auth)
                route = "interests"
            elif choice < 0.8:
                body = json.dumps({"user_id": user, "placements": placements}).encode()
                status, _b, _h = site.request("POST", "/api/v1/ads/decisions", body, auth)
                route = "decisions"
            else:
                status, _b, _h = site.request("GET", "/", headers={"User-Agent": "Mozilla/5.0 Chrome/124.0"})
                route = "page"
        except OSError:
            status, route = 0, "error"
        answers.append((route, status, time.monotonic() - started))
        time.sleep(0.05)


def _sample(stack: Stack, minute: int) -> dict[str, Any]:
    processes: dict[str, int] = {}
    by_role: dict[str, int] = {}
    for proc in stack.site.processes():
        key = f"{proc.role}:{proc.pid}"
        processes[key] = rss_kib(proc.pid)
        by_role[proc.role] = by_role.get(proc.role, 0) + processes[key]
    if stack.redis.proc is not None:
        processes[f"redis:{stack.redis.proc.pid}"] = rss_kib(stack.redis.proc.pid)
    pg_pids = [int(row[0]) for row in stack.postgres.query("SELECT pid FROM pg_stat_activity")]
    pg_rss = sum(rss_kib(pid) for pid in pg_pids)
    client = stack.redis.client()
    try:
        info = client.info()
        stream = int(client.xlen("adsite:events"))
    finally:
        client.close()
    # the events table may be partitioned: its size is its partitions' (the parent holds no rows)
    events, table_bytes = stack.postgres.query(
        "SELECT (SELECT count(*) FROM tracking_event), pg_total_relation_size('tracking_event') + "
        "coalesce((SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
        "WHERE inhparent = 'tracking_event'::regclass), 0)"
    )[0]
    connections = stack.postgres.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'adsite' AND pid <> pg_backend_pid()"
    )[0][0]
    return {
        "minute": minute,
        "rss_kib": processes,
        "rss_site_total_mib": round(sum(v for k, v in processes.items() if not k.startswith("redis")) / 1024, 1),
        "rss_by_role_mib": {role: round(kib / 1024, 1) for role, kib in sorted(by_role.items())},
        "postgres_backends_rss_mib": round(pg_rss / 1024, 1),
        "postgres_connections": int(connections),
        "redis_clients": int(info["connected_clients"]),
        "redis_used_memory_mib": round(int(info["used_memory"]) / 2**20, 2),
        "stream_length": stream,
        "events_rows": int(events),
        "events_table_mib": round(int(table_bytes) / 2**20, 2),
    }


def soak(minutes: float, out: Path, *, tracemalloc_dir: Path | None = None) -> dict[str, Any]:
    trace_dir, python_path = "", os.environ.get("PYTHONPATH", "")
    if tracemalloc_dir is not None:
        # every process of the site traces its allocations (benchmarks/memtrace/sitecustomize.py)
        tracemalloc_dir.mkdir(parents=True, exist_ok=True)
        trace_dir = str(tracemalloc_dir.resolve())
        memtrace = str(Path(__file__).resolve().parent / "memtrace")
        python_path = os.pathsep.join(p for p in (memtrace, python_path) if p)
    # a traced site starts several times slower (every allocation of the imports is recorded)
    with stack_up(start_timeout_s=900 if trace_dir else 180, TRACKING_FLUSH_SECONDS="2",
                  ADSITE_TRACEMALLOC_DIR=trace_dir, PYTHONPATH=python_path) as stack:
        traffic = Traffic(stack.site, "soak", senders=1, batch_size=20, pause_s=0.1)
        stop = threading.Event()
        answers: list[tuple[str, int, float]] = []
        reader = threading.Thread(target=_reads, args=(stack, stop, answers, "soak"), daemon=True)
        traffic.start()
        reader.start()
        samples = [_sample(stack, 0)]
        print(json.dumps({k: v for k, v in samples[0].items() if k != "rss_kib"}), flush=True)
        started = time.monotonic()
        for minute in range(1, int(minutes) + 1):
            time.sleep(max(0.0, started + 60 * minute - time.monotonic()))
            samples.append(_sample(stack, minute))
            print(json.dumps({k: v for k, v in samples[-1].items() if k != "rss_kib"}), flush=True)
        stop.set()
        traffic.stop()
        reader.join(timeout=30)
        traffic.retry_unaccepted()
        wait_for(lambda: stream_drained(stack.redis), timeout=120, what="event buffer drained")
        count = traffic.reconcile(stack.postgres)
        count["ledger_unaccounted"] = stack.site.ledger()["unaccounted"]
        reads: dict[str, Any] = {}
        for route in ("interests", "decisions", "page"):
            seconds = sorted(s for r, _st, s in answers if r == route)
            statuses: dict[str, int] = {}
            for r, st, _s in answers:
                if r == route:
                    statuses[str(st)] = statuses.get(str(st), 0) + 1
            reads[route] = {
                "requests": len(seconds),
                "p50_ms": round(seconds[len(seconds) // 2] * 1000, 1) if seconds else None,
                "p99_ms": round(seconds[int(len(seconds) * 0.99)] * 1000, 1) if seconds else None,
                "statuses": statuses,
            }
        result = {
            "minutes": minutes,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "events": count,
            "writes": latency_summary(traffic.answers),
            "reads": reads,
            "samples": samples,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


def _table(result: dict[str, Any]) -> str:
    lines = [
        "| minute | site RSS MiB (all processes) | web workers | Celery worker + pool | beat | PG conns | "
        "PG backends RSS MiB | Redis clients | Redis MiB | stream | events rows | events table MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["samples"]:
        role = s.get("rss_by_role_mib", {})
        worker = round(role.get("celery-worker", 0) + role.get("celery-child", 0), 1)
        lines.append(
            f"| {s['minute']} | {s['rss_site_total_mib']} | {role.get('web-worker', '-')} | {worker} | "
            f"{role.get('beat', '-')} | {s['postgres_connections']} | "
            f"{s['postgres_backends_rss_mib']} | {s['redis_clients']} | {s['redis_used_memory_mib']} | "
            f"{s['stream_length']} | {s['events_rows']} | {s['events_table_mib']} |"
        )
    return "\n".join(lines)


def chart(result: dict[str, Any], path: Path) -> None:
    """Draw the per-minute samples as a PNG: resident memory per role, connections, Redis memory and
    the events table. Needs matplotlib (``pip install -e '.[docs]'``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [s["minute"] for s in samples]

    def role(s: dict[str, Any], *names: str) -> float:
        return round(sum(s.get("rss_by_role_mib", {}).get(name, 0) for name in names), 1)

    fig, (memory, connections, stored) = plt.subplots(1, 3, figsize=(15, 4.2))
    series = {
        "web workers (all)": [role(s, "web-worker") for s in samples],
        "Celery worker + pool": [role(s, "celery-worker", "celery-child") for s in samples],
        "beat": [role(s, "beat") for s in samples],
    }
    for label, values in series.items():
        memory.plot(minutes, values, marker=".", label=label)
    memory.set(title="Resident memory per role (MiB)", xlabel="minute", ylim=(0, None))
    memory.legend(fontsize=8)
    connections.plot(minutes, [s["postgres_connections"] for s in samples], marker=".", label="PostgreSQL connections")
    connections.plot(minutes, [s["redis_clients"] for s in samples], marker=".", label="Redis clients")
    connections.set(title="Open connections", xlabel="minute", ylim=(0, None))
    connections.legend(fontsize=8)
    stored.plot(minutes, [s["redis_used_memory_mib"] for s in samples], marker=".", label="Redis used memory (MiB)")
    stored.plot(minutes, [s["events_table_mib"] for s in samples], marker=".", label="events table (MiB)")
    stored.set(title="Redis memory and events table", xlabel="minute", ylim=(0, None))
    stored.legend(fontsize=8)
    fig.suptitle(f"Soak, {result['minutes']:g} minutes, finished {result['finished_at']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["chart"]:  # redraw from a run's JSON: chart RUN.json OUT.png
        chart(json.loads(Path(argv[1]).read_text()), Path(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("minutes", type=float)
    parser.add_argument("out", nargs="?", default="var/soak/last-run.json")
    parser.add_argument("--tracemalloc", metavar="DIR", type=Path, default=None,
                        help="trace allocations in every site process; per-process reports each minute in DIR")
    parser.add_argument("--chart", metavar="PNG", type=Path, default=None,
                        help="also draw the samples as a PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    result = soak(args.minutes, Path(args.out), tracemalloc_dir=args.tracemalloc)
    if args.chart is not None:
        chart(result, args.chart)
    print(_table(result))
    print(json.dumps({"events": result["events"], "writes": result["writes"], "reads": result["reads"]}, indent=2))
    lost = result["events"]["lost"] + result["events"]["duplicated"]
    return 1 if lost or result["events"]["ledger_unaccounted"] else 0


if __name__ == "__main__":
    sys.exit(main())
