"""Ad decision benchmarks: ``POST /api/v1/ads/decisions`` under gunicorn, and ``ads_select`` in-process.

    python -m benchmarks.ads [--services] [--seconds 10]

``bench_decisions(services)`` is the section ``benchmarks.run`` calls: a fresh database set up as
``make run`` sets it up (``bootstrap_demo``: the demo site, ~40 campaigns, demo traffic of 400 visitors,
the first neural and LightGBM models); two servers of 2 web processes each on that database, granian (what
``make run`` starts) and gunicorn sync workers (the previous server), measured in interleaved rounds
(``BENCH_ROUNDS``, default 3; ``BENCH_PEER_SERVERS`` picks the servers, ``BENCH_BEFORE_DIR`` adds the previous
code as ``before``, as in ``benchmarks.peer``; ``BENCH_THEN_DIR`` adds an older checkout as ``then``, set up by its own
``bootstrap_demo`` on its own database and Redis and served by gunicorn as it was then, e.g. the code issue 17 was
filed against (``git archive 5db0f76 | tar -x -C DIR``), whose decisions/s the issue asks to double; a Celery worker of this checkout runs beside them in
services mode); 8 concurrent keep-alive clients,
each request deciding 3 placements for one of the 400 demo visitors (token auth), so every decision
includes a real interest prediction from the visitor's history. As in ``benchmarks.peer``, before each round
every demo visitor gets a fresh page view through ``POST /api/v1/events`` on each database (so every visitor's
features changed since their last decision), and the round starts ``BENCH_FRESH_WAIT_S`` later: decisions read
the answers the worker recomputed meanwhile where they are current, and the share predicted live is reported
(``BENCH_FRESH_EVENTS=0``: no events; the imported visitors then have no stored answers and every prediction
is live). Bars: server-side p99 <= 10 ms, client
p99 <= 15 ms, and granian's req/s at least 2x gunicorn's.
The in-process row times ``ads_select`` alone (prediction included) over 5,000 decisions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

IN_PROCESS = r"""
import json, statistics, time, django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
django.setup()
from adsite.ads.decisions import PlacementRequest, ads_select
places = [PlacementRequest("leaderboard"), PlacementRequest("sidebar"), PlacementRequest("footer")]
served = {}
for i in range(300):
    ads_select(user_id=f"demo-{i % 400 + 1:05d}", placements=places)
samples = []
for i in range(5000):
    t0 = time.perf_counter()
    decision = ads_select(user_id=f"demo-{i % 400 + 1:05d}", placements=places)
    samples.append((time.perf_counter() - t0) * 1000)
    served[decision.interests_served_by] = served.get(decision.interests_served_by, 0) + 1
q = statistics.quantiles(samples, n=100, method="inclusive")
print(json.dumps({"p50": q[49], "p99": q[98], "max": max(samples), "served_by": served}))
"""


def decisions_body(client: int, n: int) -> bytes:
    return json.dumps(
        {"user_id": f"demo-{(client * 7919 + n) % 400 + 1:05d}", "placements": ["leaderboard", "sidebar", "footer"]}
    ).encode()


# the same bodies for wrk (benchmarks/load.py): thread_id stands for the client number
DECISIONS_LUA = r"""
function body(n)
  return string.format('{"user_id": "demo-%05d", "placements": ["leaderboard", "sidebar", "footer"]}',
                       (thread_id * 7919 + n) % 400 + 1)
end
"""


def bench_decisions(services: bool = False) -> list[dict[str, str]]:
    from benchmarks.load import run_load
    from benchmarks.run import (
        BENCH_VAR,
        PY,
        ROOT,
        SECONDS,
        bar,
        fresh_state,
        load_average,
        manage,
        row,
        served_row,
        server_latency,
        server_samples,
    )

    mode = "services" if services else "embedded"
    env = fresh_state(BENCH_VAR / f"ads-{mode}", services)
    manage(env, "bootstrap_demo")  # as `make run`: demo site, campaigns, traffic, first models
    token = manage(env, "create_api_token", "bench-ads").stdout.strip().splitlines()[-1]
    out = []
    measured = subprocess.run([PY, "-c", IN_PROCESS], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    figures = json.loads(measured.stdout.strip().splitlines()[-1])
    out.append(row(f"ads_select in-process, {mode}, 3 placements, 41 campaigns",
                   f"p50 {figures['p50']:.2f} ms, p99 {figures['p99']:.2f} ms, max {figures['max']:.1f} ms",
                   f"prediction included (demo visitors with history; served_by {figures['served_by']})"))
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    # both servers from the same database, rounds interleaved: granian (what `make run` starts) and the
    # previous gunicorn sync workers; each server's workers write metrics to their own multiprocess
    # directory, read before its first and after its last measured round (server-side latency, models)
    from benchmarks.peer import (
        FRESH_WAIT_S,
        ROUNDS,
        adsite_server,
        celery_worker,
        connection_split,
        post_fresh_events,
        server_cpu_seconds,
        server_kinds,
        split_text,
        worker_warm,
    )

    kinds = server_kinds()
    envs = {kind: env for kind in kinds}
    headers_of = {kind: headers for kind in kinds}
    if "then" in kinds:
        envs["then"], then_token = _then_state(mode, services)
        headers_of["then"] = {**headers, "Authorization": f"Token {then_token}"}
    servers = {kind: adsite_server(kind, envs[kind], BENCH_VAR / f"ads-{mode}-prom-{kind}") for kind in kinds}
    # as `make run` serves: a worker beside the web processes (it recomputes stored answers after events)
    worker = celery_worker(env, BENCH_VAR / f"ads-{mode}-prom-worker") if services else None
    ports: dict[str, int] = {}
    results: dict[str, list[Any]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}  # the server's CPU ms per decision, each round
    splits: dict[str, list[list[int]]] = {kind: [] for kind in kinds}  # the clients' connections per web process
    late_splits: dict[str, list[list[int]]] = {kind: [] for kind in kinds}  # the same, 1 s before each round's end
    samples: dict[str, list[dict[str, float]]] = {}
    warm: dict[str, dict[str, int]] = {}
    try:
        if worker is not None:
            worker.__enter__()
        for kind, server in servers.items():
            ports[kind] = server.__enter__()
            warm[kind] = _sequential(ports[kind], headers_of[kind], n=40)  # every worker past its first requests
        if worker is not None and FRESH_EVENTS:  # the worker past its first recomputes (its models loaded)
            worker_warm(ports[kinds[0]], DEMO_USERS, headers_of[kinds[0]], BENCH_VAR / f"ads-{mode}-prom-worker",
                        categories=FRESH_TOPICS)
        for kind in kinds:
            run_load(port=ports[kind], path="/api/v1/ads/decisions", method="POST", headers=headers_of[kind],
                     body_factory=decisions_body, lua_body=DECISIONS_LUA, clients=8, seconds=2, warmup=0)
            samples[kind] = [server_samples(BENCH_VAR / f"ads-{mode}-prom-{kind}")]
        fresh = 0
        for r in range(ROUNDS):
            if FRESH_EVENTS:  # one page view per visitor on each database, then the worker's debounce
                for kind in {"granian": kinds[0], **({"then": "then"} if "then" in kinds else {})}.values():
                    fresh += post_fresh_events(ports[kind], DEMO_USERS, r, headers_of[kind], categories=FRESH_TOPICS)
                time.sleep(FRESH_WAIT_S)
            for kind in kinds[r % len(kinds):] + kinds[: r % len(kinds)]:
                cpu_before = server_cpu_seconds(ports[kind])
                # the kernel's split 1 s in, and what the web processes made of it 1 s before the end
                # (adsite/ops/connection_balance.py)
                with connection_split(ports[kind]) as split, connection_split(ports[kind], max(1.5, SECONDS - 1)) as late:
                    results[kind].append(run_load(
                        port=ports[kind], path="/api/v1/ads/decisions", method="POST", headers=headers_of[kind],
                        body_factory=decisions_body, lua_body=DECISIONS_LUA, clients=8, seconds=SECONDS, warmup=0))
                splits[kind].append(split)
                late_splits[kind].append(late)
                cpu[kind].append((server_cpu_seconds(ports[kind]) - cpu_before) * 1000 / max(1, results[kind][-1].requests))
        time.sleep(0.3)
        for kind in kinds:
            samples[kind].append(server_samples(BENCH_VAR / f"ads-{mode}-prom-{kind}"))
    finally:
        for kind in reversed(list(ports)):
            servers[kind].__exit__(None, None, None)
        if worker is not None:
            worker.__exit__(None, None, None)

    def med(kind: str, attr: str) -> float:
        return statistics.median(r.rps if attr == "rps" else getattr(r, attr) for r in results[kind])

    for kind in kinds:
        server = server_latency(samples[kind][0], samples[kind][1], "ads-decisions")
        ok = all(r.errors == 0 and r.requests > 0 for r in results[kind])
        out.append(row(f"POST /api/v1/ads/decisions, {mode}, {kind} 2 workers, 8 clients, 3 placements "
                       f"(median of {len(results[kind])} rounds)",
                       f"{med(kind, 'rps'):,.0f} req/s; p50 {med(kind, 'p50_ms'):.2f} ms, p99 {med(kind, 'p99_ms'):.2f} ms; "
                       f"server CPU {statistics.median(cpu[kind]):.3f} ms a decision",
                       "rounds: " + "; ".join(f"{r.rps:,.0f}/s p50 {r.p50_ms:.1f} p99 {r.p99_ms:.1f} ms CPU {c:.3f} ms"
                                              for r, c in zip(results[kind], cpu[kind], strict=True))
                       + f"; connections per web process {split_text(splits[kind])} "
                       f"(1 s before the end: {split_text(late_splits[kind])})"
                       + f"; errors {sum(r.errors for r in results[kind])}; warm-up served_by {warm[kind]}; "
                       f"load average {load_average()}"))
        out.append(row(f"POST /api/v1/ads/decisions, {kind}, same rounds, server-side (in the workers)",
                       f"p50 {server.p50_ms:.2f} ms, p99 {server.p99_ms:.2f} ms; "
                       f"{server.share_within(10.0):.2%} within 10 ms",
                       f"http_request_seconds of {server.count:,} requests (bucketed); excludes the wait for a free worker"))
        out.append(served_row(f"POST /api/v1/ads/decisions, {kind}, same rounds, predictions by model", server))
        reads = server.counts("inference_stored_reads_total", "outcome")
        if reads:
            out.append(row(f"POST /api/v1/ads/decisions, {kind}, same rounds, interests answered live",
                           f"{reads.get('live', 0) / max(1, sum(reads.values())):.1%} of {sum(reads.values()):,} reads",
                           f"stored-answer reads by outcome {reads}; {fresh:,} fresh events before the rounds, "
                           f"{FRESH_WAIT_S:g} s before each round" if FRESH_EVENTS else "no fresh events (BENCH_FRESH_EVENTS=0)"))
        out.append(bar(f"POST /api/v1/ads/decisions, {kind}, 2 workers, 8 clients, server-side",
                       "p99 <= 10 ms (whole decision, server-side)",
                       f"p99 {server.p99_ms:.1f} ms ({server.share_within(10.0):.2%} within 10 ms)",
                       ok and server.count > 0 and server.share_within(10.0) >= 0.99))
        out.append(bar(f"POST /api/v1/ads/decisions, {kind}, 2 workers, 8 clients, as the clients see it",
                       "client p99 <= 15 ms at 8 connections",
                       f"p99 {med(kind, 'p99_ms'):.1f} ms (p50 {med(kind, 'p50_ms'):.1f} ms, {med(kind, 'rps'):,.0f} req/s)",
                       ok and med(kind, "p99_ms") <= 15))
    previous = "before" if "before" in results else "gunicorn"
    if "granian" in results and previous in results:
        ratio = med("granian", "rps") / med(previous, "rps")
        out.append(bar(f"POST /api/v1/ads/decisions, granian vs {previous}, same run",
                       f"req/s at least 2x the previous {'code' if previous == 'before' else 'server'}'s",
                       f"{ratio:.2f}x ({med('granian', 'rps'):,.0f} vs {med(previous, 'rps'):,.0f} req/s)", ratio >= 2))
    if "granian" in results and "then" in results:
        ratio = med("granian", "rps") / med("then", "rps")
        out.append(bar("POST /api/v1/ads/decisions, this code (granian) vs the older checkout (BENCH_THEN_DIR), same run",
                       "req/s at least 2x the older code's",
                       f"{ratio:.2f}x ({med('granian', 'rps'):,.0f} vs {med('then', 'rps'):,.0f} req/s)", ratio >= 2))
    return out


FRESH_EVENTS = os.environ.get("BENCH_FRESH_EVENTS", "1") != "0"
DEMO_USERS = [f"demo-{i:05d}" for i in range(1, 401)]
# categories of the demo site (adsite/content/data/taxonomy.json) for the fresh page views
FRESH_TOPICS = ("sports", "travel", "technology-and-computing", "food-and-drink", "movies", "music-and-audio",
                "personal-finance")


def _then_state(mode: str, services: bool) -> tuple[dict[str, str], str]:
    """(environment, API token) of the older checkout (``BENCH_THEN_DIR``) on state of its own: a var dir, in
    services mode a database (this run's name + ``_then``) and the next Redis database, set up by that
    checkout's own migrations and ``bootstrap_demo``."""
    from benchmarks.peer import THEN_DIR
    from benchmarks.run import BENCH_VAR, PG_URL, PY, REDIS_URL, base_env, services_state_empty

    var_dir = BENCH_VAR / f"ads-{mode}-then"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    env = base_env(var_dir, services)
    if services:
        redis_base, _, redis_db = REDIS_URL.rpartition("/")
        env.update({"DATABASE_URL": PG_URL + "_then", "REDIS_URL": f"{redis_base}/{int(redis_db or 0) + 1}"})
        services_state_empty(env["DATABASE_URL"], env["REDIS_URL"])

    def manage(*args: str) -> str:
        return subprocess.run([PY, "manage.py", *args], cwd=THEN_DIR, env=env, check=True, capture_output=True,
                              text=True).stdout

    manage("migrate", "--noinput", "-v", "0")
    manage("bootstrap_demo")
    return env, manage("create_api_token", "bench-ads").strip().splitlines()[-1]


def _sequential(port: int, headers: dict[str, str], *, n: int) -> dict[str, int]:
    """``n`` decisions one after another (long timeout: a worker's first answers load its models)."""
    import http.client

    served: dict[str, int] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for i in range(n):
        conn.request("POST", "/api/v1/ads/decisions", body=decisions_body(0, i), headers=headers)
        response = conn.getresponse()
        body = response.read()
        key = str(json.loads(body).get("served_by")) if response.status == 200 else f"HTTP {response.status}"
        served[key] = served.get(key, 0) + 1
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.close()
    return served


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    if args.seconds is not None:
        os.environ["BENCH_SECONDS"] = str(args.seconds)
        import benchmarks.run as run

        run.SECONDS = args.seconds
    print("| benchmark | figure | note |\n|---|---|---|")
    results = bench_decisions(args.services)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
