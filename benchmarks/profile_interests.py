"""Where an interests (or decisions) request's time goes: cProfile over many requests through the server stack, in one process.

    BENCH_VAR=/tmp/bench BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/adsite_bench \
    BENCH_REDIS_URL=redis://127.0.0.1:6379/9 python -m benchmarks.profile_interests [--requests 3000] [--path decisions]

Interests (the default): services mode on MovieLens latest-small with the neural and LightGBM models active
(the ``peer`` section's state: a fresh database and Redis db, the events imported, the benchmark's models
registered), walking users 1-200 as the load generator does. ``--path decisions``: ``POST /api/v1/ads/decisions``
for 3 placements on the ``ads_decisions`` section's state (``bootstrap_demo``, as ``make run`` sets it up),
walking the 400 demo visitors with that section's bodies. Each request goes through what a granian worker runs
for it (``adsite.rsgi.BufferedWSGI.call_wsgi``: the WSGI environ, Django's handler, middleware, DRF,
authentication, throttle, the predictor with its Redis read, rendering); only the Rust HTTP side is missing. Prints the CPU time per
request through Django's stack and through the worker's hot route (``adsite/ops/hot_routes.py``), rounds
interleaved, then the top functions by own time and by cumulative time (the hot route where the worker has one, else Django's stack), and the wall time per request.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Scope:
    """The fields of granian's RSGI scope that ``BufferedWSGI`` reads."""

    path: str
    query_string: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    proto: str = "http"
    scheme: str = "http"
    server: str = "127.0.0.1:8000"
    client: str = "127.0.0.1:50000"
    http_version: str = "1.1"


def _prepare() -> tuple[dict[str, str], str]:
    """The peer section's state (fresh database, MovieLens imported, models active); returns env and a token."""
    from benchmarks.inference import MOVIELENS, _register_models, _trained
    from benchmarks.run import BENCH_VAR, fresh_state, manage

    # trained in a child process when missing: training reads the settings, and this process must first
    # read them with the services' environment (below)
    subprocess.run([sys.executable, "-c", "from benchmarks.inference import _trained; _trained()"], check=True)
    dirs = _trained()
    var_dir = BENCH_VAR / "profile"
    env = fresh_state(var_dir, services=True)
    env["INFERENCE_COMPILED_CACHE_DIR"] = str(BENCH_VAR / "compiled")
    manage(env, "import_events", "--format", "movielens", str(MOVIELENS), "--no-progress")
    _register_models(env, dirs, var_dir)
    token = manage(env, "create_api_token", "profile").stdout.strip()
    return env, token


def _prepare_decisions() -> tuple[dict[str, str], str]:
    """The ``ads_decisions`` section's state (fresh database, ``bootstrap_demo``); returns env and a token."""
    from benchmarks.run import BENCH_VAR, fresh_state, manage

    env = fresh_state(BENCH_VAR / "profile", services=True)
    manage(env, "bootstrap_demo")
    token = manage(env, "create_api_token", "profile").stdout.strip().splitlines()[-1]
    return env, token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=25, help="functions shown per table")
    parser.add_argument("--path", choices=("interests", "decisions"), default="interests")
    parser.add_argument("--reuse", action="store_true", help="keep the state of a previous run (no import)")
    parser.add_argument("--live", action="store_true",
                        help="no stored answers: every read predicts live (default: the users' answers are "
                             "recomputed first, as the worker does after their events)")
    args = parser.parse_args()
    if args.reuse:
        from benchmarks.run import BENCH_VAR, base_env

        env = base_env(BENCH_VAR / "profile", services=True)
        if args.path == "interests":
            env["INFERENCE_COMPILED_CACHE_DIR"] = str(BENCH_VAR / "compiled")
        token = (BENCH_VAR / "profile" / "token").read_text().strip()
    else:
        env, token = _prepare() if args.path == "interests" else _prepare_decisions()
        from benchmarks.run import BENCH_VAR

        (BENCH_VAR / "profile" / "token").write_text(token)
    os.environ.update(env)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if args.live:
        os.environ["INFERENCE_ANSWERS_ON_WRITE"] = "0"

    from adsite.rsgi import application

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # as __rsgi_init__ sets it (not called: it binds to granian)
    from inference.api import serving_status

    serving_status()  # the worker's warm-up: the predictor built, models loaded
    if args.path == "interests":
        users = [str(u) for u in range(1, 201)]
    else:
        from benchmarks.ads import decisions_body

        users = [f"demo-{u:05d}" for u in range(1, 401)]
    if not args.live:
        from inference.api import answers_refresh

        stored = answers_refresh(users)
        print(f"stored answers recomputed for {stored} of {len(users)} users")
    headers = {"authorization": f"Token {token}", "accept": "application/json", "host": "127.0.0.1:8000"}
    if args.path == "interests":
        requests = [(_Scope(path=f"/api/v1/users/{u}/interests", query_string="top=5", headers=headers), b"")
                    for u in users]
    else:
        post = {**headers, "content-type": "application/json"}
        requests = [(_Scope(path="/api/v1/ads/decisions", query_string="", method="POST", headers=post),
                     decisions_body(n % 8, n)) for n in range(len(users))]
    for scope, body in requests:  # warm: every user once, caches filled
        status, _, reply = application.call_wsgi(scope, body)
        assert status == 200, (status, reply[:200])
    served: dict[str, int] = {}
    # Django's whole stack against the worker's hot route (adsite/ops/hot_routes.py), rounds interleaved: CPU
    # time of this process per request (the Redis round trip's wait is not CPU)
    hot = application.hot_routes
    ways = {"django": lambda request: application.call_wsgi(*request)}
    if hot is not None:
        ways["hot route"] = lambda request: hot.answer(request[0], request[1], {})
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    for _round in range(5):
        for name, way in ways.items():
            started = time.process_time()
            for i in range(args.requests // 5):
                way(requests[i % len(requests)])
            cpu[name].append((time.process_time() - started) / (args.requests // 5) * 1e6)
    print("CPU per request, median of 5 interleaved rounds: "
          + ", ".join(f"{name} {sorted(v)[2]:.0f} µs" for name, v in cpu.items()))
    started = time.perf_counter()
    for i in range(args.requests):
        application.call_wsgi(*requests[i % len(requests)])
    bare = (time.perf_counter() - started) / args.requests
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for i in range(args.requests):
        hot_or_django = ways["hot route" if hot is not None else "django"]
        hot_or_django(requests[i % len(requests)])
    profiler.disable()
    took = time.perf_counter() - started
    import orjson

    for request in requests[:50]:
        answer: Any = orjson.loads(application.call_wsgi(*request)[2])
        by = answer["served_by"]
        served[by] = served.get(by, 0) + 1
    print(f"{args.requests} requests, {bare * 1000:.3f} ms each, {took / args.requests * 1000:.3f} ms under the profiler "
          f"({'the hot route' if hot is not None else 'Django'}); served_by over 50: {served}")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
