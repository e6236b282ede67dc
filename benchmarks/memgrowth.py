"""Where the site's memory grows: the soak's code paths driven in a loop in ONE process, traced.

``python -m benchmarks.memgrowth [--rounds 12] [--per-round 100]`` (not in CI), services mode: needs
``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` of a database and a Redis database it may fill and flush.
Every round sends the soak's traffic through Django's test client (tracker batches to ``/collect``,
server-to-server batches to ``/api/v1/events``, interests, ad decisions, the home page), then does the
worker's share in the same process (the buffer's flush, the stored answers' recompute, the dashboard
rollup), and prints the traced total and the resident memory. After the warm-up rounds it compares the
last snapshot with the one taken after warm-up, by allocation site: what still grows after warm-up is a
leak or a cache still filling, named by file and line.

Tracing the whole site in its own processes (``scripts/soak.sh --tracemalloc``) is too slow on a shared
host; this keeps the paths the same and the process one.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.stack import soak_event

USERS = 50  # as the soak's traffic (benchmarks.stack.Traffic)
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _setup() -> str:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")  # as the soak's stack serves it
    os.environ.setdefault("ADSITE_RATE_LIMITS", "0")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    call_command("seed_demo", verbosity=0)
    call_command("seed_ads", verbosity=0)
    from io import StringIO

    out = StringIO()
    call_command("create_api_token", "memgrowth", stdout=out)
    return out.getvalue().strip().split()[-1]


def _round(
    client: Any, token: str, per_round: int, counter: list[int], statuses: dict[str, int], *, flush: bool = True
) -> None:
    from django.db import reset_queries

    from adsite.dashboard.rollup import rollup_refresh
    from inference.api import answers_refresh
    from tracking.buffer import stream_flush

    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    for _ in range(per_round):
        # one visitor's batch, the visitors in turn (as the soak's traffic: /collect takes a visitor's own)
        visitor = (counter[0] // 20) % USERS
        events = []
        for _e in range(20):
            counter[0] += 1
            events.append(soak_event(counter[0], user_id=f"f-mem-{visitor:02d}"))
        if counter[0] % 40 < 20:
            client.cookies["adsite_uid"] = events[0]["user_id"]
            answer = client.post("/collect", json.dumps({"events": events}), content_type="application/json",
                                 HTTP_USER_AGENT=UA)
        else:
            answer = client.post("/api/v1/events", json.dumps({"events": events}),
                                 content_type="application/json", HTTP_USER_AGENT=UA, **auth)
        statuses[f"write {answer.status_code}"] = statuses.get(f"write {answer.status_code}", 0) + 1
        user = f"f-mem-{random.randrange(USERS):02d}"
        choice = random.random()
        if choice < 0.4:
            answer = client.get(f"/api/v1/users/{user}/interests?top=5", **auth)
            route = "interests"
        elif choice < 0.8:
            answer = client.post("/api/v1/ads/decisions",
                                 json.dumps({"user_id": user, "placements": ["leaderboard", "sidebar"]}),
                                 content_type="application/json", **auth)
            route = "decisions"
        else:
            answer = client.get("/", HTTP_USER_AGENT=UA)
            route = "page"
        statuses[f"{route} {answer.status_code}"] = statuses.get(f"{route} {answer.status_code}", 0) + 1
    # the worker's share: the flush (every 2 s in the soak), the recompute of every visitor's answer
    # (debounced per visitor), the dashboard rollup (every 30 s)
    import redis

    try:
        if flush:  # off: the buffer's backlog grows, as when the worker falls behind
            stream_flush(max_batches=200)
        answers_refresh([f"f-mem-{u:02d}" for u in range(USERS)])
        rollup_refresh()
    except (redis.ConnectionError, redis.TimeoutError) as exc:  # as the tasks do: the next round retries
        statuses[f"worker {type(exc).__name__}"] = statuses.get(f"worker {type(exc).__name__}", 0) + 1
    reset_queries()  # as the Celery worker does after every task under DEBUG (adsite/celery.py)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3, help="rounds before tracing starts (not traced)")
    parser.add_argument("--per-round", type=int, default=100, help="write batches (of 20 events) per round")
    parser.add_argument("--flush-every", type=int, default=1,
                        help="flush the buffer every N rounds (N > 1: larger flush batches, as with a backlog)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        print("memgrowth needs DATABASE_URL and REDIS_URL (services mode)", file=sys.stderr)
        return 2
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()  # a Redis database of its own, as documented
    token = _setup()
    from django.test import Client

    client = Client()
    counter: list[int] = [0]
    statuses: dict[str, int] = {}
    lines: list[str] = []
    reference: tracemalloc.Snapshot | None = None
    for index in range(1, args.rounds + 1):
        if index == args.warmup + 1:
            # traced from here on only: the warm-up's allocations (imports, first queries, caches filling
            # once) are not what the comparison is after, and tracing them would cost minutes
            gc.collect()
            tracemalloc.start(args.frames)
            reference = tracemalloc.take_snapshot()
        started = time.monotonic()
        _round(client, token, args.per_round, counter, statuses, flush=index % args.flush_every == 0)
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] / 2**20
        line = (f"round {index}: {counter[0]} events, traced {traced:.1f} MiB, RSS {_rss_mib():.1f} MiB, "
                f"{time.monotonic() - started:.0f} s")
        print(line, flush=True)
        lines.append(line)
    lines.append(json.dumps(statuses, sort_keys=True))
    if reference is not None:
        last = tracemalloc.take_snapshot()
        ignore = (tracemalloc.Filter(False, tracemalloc.__file__),)
        diff = last.filter_traces(ignore).compare_to(reference.filter_traces(ignore), "traceback")
        lines.append(f"\ngrowth from round {args.warmup + 1}, by allocation site (largest first):")
        for stat in diff[: args.top]:
            lines.append(f"{stat.size_diff / 1024:+.0f} KiB {stat.count_diff:+d} blocks (now {stat.size / 1024:.0f} KiB)")
            lines.extend(f"    {frame}" for frame in stat.traceback.format()[-2 * args.frames:])
    report = "\n".join(lines)
    print(report[report.index("\n{") + 1:] if "\n{" in report else report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
