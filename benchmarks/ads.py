"""Ad decision benchmarks: ``POST /api/v1/ads/decisions`` under gunicorn, and ``ads_select`` in-process.

    python -m benchmarks.ads [--services] [--seconds 10]

``bench_decisions(services)`` is the section ``benchmarks.run`` calls: a fresh database set up as
``make run`` sets it up (``bootstrap_demo``: the demo site, ~40 campaigns, demo traffic of 400 visitors,
the first neural and LightGBM models), gunicorn with 2 workers, 8 concurrent keep-alive clients, each
request deciding 3 placements for one of the 400 demo visitors (token auth), so every decision includes
a real interest prediction from the visitor's history. The bar (issue 5) is p99 <= 10 ms.
The in-process row times ``ads_select`` alone (prediction included) over 5,000 decisions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

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
    from benchmarks.run import (
        BENCH_VAR,
        PY,
        ROOT,
        SECONDS,
        bar,
        fresh_state,
        gunicorn,
        load_row,
        manage,
        measured_load,
        row,
        served_row,
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
    # the served configuration: scripts/gunicorn.conf.py warms each worker's predictor before it serves;
    # the workers' metrics are shared through a multiprocess directory, read before and after the load
    prom = BENCH_VAR / f"ads-{mode}-prometheus"
    shutil.rmtree(prom, ignore_errors=True)
    prom.mkdir(parents=True)
    with gunicorn({**env, "PROMETHEUS_MULTIPROC_DIR": str(prom)}, workers=2, threads=1,
                  config=str(ROOT / "scripts" / "gunicorn.conf.py")) as port:
        warm = _sequential(port, headers, n=40)  # both workers past their first requests (cold on a busy host)
        result, server = measured_load(prom, "ads-decisions", port=port, path="/api/v1/ads/decisions",
                                       method="POST", headers=headers, body_factory=decisions_body,
                                       lua_body=DECISIONS_LUA, clients=8, seconds=SECONDS)
    ok = result.errors == 0 and result.requests > 0
    out.append(load_row(f"POST /api/v1/ads/decisions, {mode}, gunicorn 2 workers, 8 clients, 3 placements",
                        result, note=f"warm-up answers served_by {warm}"))
    out.append(row(f"POST /api/v1/ads/decisions, {mode}, same load, server-side (in the workers)",
                   f"p50 {server.p50_ms:.2f} ms, p99 {server.p99_ms:.2f} ms; "
                   f"{server.share_within(10.0):.2%} within 10 ms",
                   f"http_request_seconds of {server.count:,} requests (bucketed: percentiles interpolated "
                   "inside a bucket, the share within 10 ms exact); excludes the wait for a free worker"))
    out.append(served_row(f"POST /api/v1/ads/decisions, {mode}, same load, predictions by model", server))
    out.append(bar("POST /api/v1/ads/decisions, 2 workers, 8 clients, server-side",
                   "p99 <= 10 ms (issue 5: whole decision, server-side)",
                   f"p99 {server.p99_ms:.1f} ms ({server.share_within(10.0):.2%} within 10 ms)",
                   ok and server.count > 0 and server.share_within(10.0) >= 0.99))
    out.append(bar("POST /api/v1/ads/decisions, 2 workers, 8 clients, as the clients see it",
                   "p99 <= 10 ms (issue 5, read strictly: client latency, queueing for a worker included)",
                   f"p99 {result.p99_ms:.1f} ms (p50 {result.p50_ms:.1f} ms, {result.rps:,.0f} req/s)",
                   ok and result.p99_ms <= 10))
    return out


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
