"""adsite's interests endpoint against the peer a team would write instead, in one run, rounds interleaved.

    python -m benchmarks.run --only peer          (part of ``make bench``)

The peer is ``../shared/peers/interest_service.py`` (FastAPI + LightGBM over in-memory decayed counts,
uvicorn with 2 workers), run from its own virtual environment (``BENCH_PEER_VENV``, default
``var/peer-venv``, created and installed with pinned versions on first use; never the project's).
adsite runs in services mode (PostgreSQL + Redis) on MovieLens latest-small with the neural and LightGBM
models active, 2 web processes, served two ways from the same database:

- ``granian``: what ``make run`` starts (``scripts/serve.sh``: granian's RSGI interface, adsite/rsgi.py, through
  adsite/ops/granian_server.py: the workers' listening sockets held by granian's main process);
- ``gunicorn``: the previous server (2 sync workers, scripts/gunicorn.conf.py);
- ``before``: granian serving another checkout of adsite (``BENCH_BEFORE_DIR``, e.g. ``git archive <commit> |
  tar -x -C DIR``) with the same interpreter, database and Redis: the previous code, for before/after.
- ``then``: an older checkout (``BENCH_THEN_DIR``) served as it was served then (gunicorn sync workers with that
  checkout's ``scripts/gunicorn.conf.py``) on a database and Redis of its own, which the caller sets up with that
  checkout's ``bootstrap_demo`` (``benchmarks/ads.py``): code too old to read today's schema and model files.

Kinds by ``BENCH_PEER_SERVERS`` (default ``granian``, plus ``before`` when ``BENCH_BEFORE_DIR`` is set; ``granian-x<N>``:
this code on N web processes instead of 2).
Stored answers (``INFERENCE["ANSWERS_ON_WRITE"]``) need a worker: one Celery worker of this checkout runs beside
the servers. Before each round every user 1-200 gets a fresh event through ``POST /api/v1/events`` (so every user's
features changed since their last read), then the round waits ``BENCH_FRESH_WAIT_S`` (default 2) and reads.
Reported besides: the share of reads answered live (stored answer missing or stale) and the worker's CPU time
per fresh event (the write side's cost: the debounced recompute), and each server's CPU time per interests request
(all its processes, ``server_cpu_seconds``): on 2 cores shared with wrk, req/s moves with whatever else runs, while
the CPU a request costs the server moves much less. With each round: how the 8 keep-alive connections fell
to each server's worker processes (``worker_connections``, read 1 s into the round, e.g. ``6+2``): a worker answers
only its own connections, so an uneven split queues more requests on one worker while the other has less to do.

Each round runs, for every server in a rotating order, ``GET /users/{u}/interests?top=5`` walking users
1-200 (each wrk connection from its own offset) and ``GET /healthz``: wrk, 8 connections, ``BENCH_SECONDS``
each (default 10). ``BENCH_ROUNDS`` rounds (default 3). Figures per target are the median over the rounds of
p50, p99 and req/s; which model answered comes from adsite's own ``inference_served_total`` over the measured
requests. The host is shared, so compare only figures of the same run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.load import LoadResult, run_load
from benchmarks.ports import free_port

PEER_DIR = Path(os.environ.get("BENCH_PEER_DIR", Path(__file__).resolve().parent.parent.parent / "shared" / "peers"))
PEER_REQUIREMENTS = ["fastapi==0.165.0", "uvicorn[standard]==0.55.0", "lightgbm==4.7.0", "numpy==2.4.6",
                     "orjson==3.13.0"]
USERS = [str(u) for u in range(1, 201)]
BEFORE_DIR = os.environ.get("BENCH_BEFORE_DIR", "")
THEN_DIR = os.environ.get("BENCH_THEN_DIR", "")
FRESH_WAIT_S = float(os.environ.get("BENCH_FRESH_WAIT_S", "2"))
FRESH_GENRES = ("drama", "comedy", "action", "thriller", "sci-fi", "romance", "adventure")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PEER_START_S = float(os.environ.get("BENCH_PEER_START_S", "1800"))
CLIENTS = 8


def peer_venv() -> Path:
    from benchmarks.run import ROOT

    venv = Path(os.environ.get("BENCH_PEER_VENV", ROOT / "var" / "peer-venv"))
    marker = venv / ".installed"
    if not marker.is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        *PEER_REQUIREMENTS], check=True)
        marker.write_text("\n".join(PEER_REQUIREMENTS) + "\n")
    return venv


def _wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    import http.client

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                conn.close()
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not answer {path}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a process started in its own session; kill its group if it does not go within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)


@contextmanager
def _process(cmd: list[str], *, cwd: Path, env: dict[str, str], port: int, ready_path: str = "/healthz",
             timeout: float = 300.0) -> Iterator[int]:
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True)
    try:
        _wait_http(port, ready_path, proc, timeout)
        yield port
    finally:
        _stop(proc)


def server_kinds() -> list[str]:
    default = ",".join(["granian", *(["before"] if BEFORE_DIR else []), *(["then"] if THEN_DIR else [])])
    return [k for k in os.environ.get("BENCH_PEER_SERVERS", default).split(",") if k]


def adsite_server(kind: str, env: dict[str, str], prom: Path) -> Any:
    from benchmarks.run import PY, ROOT

    cwd = ROOT
    workers = 2
    if kind.startswith("granian-x"):  # this code on another number of web processes, e.g. granian-x4
        kind, workers = "granian", int(kind.removeprefix("granian-x"))
    if kind == "before":  # the previous code, served the same way
        if not BEFORE_DIR:
            raise RuntimeError("server 'before' needs BENCH_BEFORE_DIR (a checkout of the previous code)")
        cwd, kind = Path(BEFORE_DIR), "granian"
    elif kind == "then":  # an older checkout on its own database, served as it was then
        if not THEN_DIR:
            raise RuntimeError("server 'then' needs BENCH_THEN_DIR (a checkout of the older code)")
        cwd, kind = Path(THEN_DIR), "gunicorn"
    port = free_port()
    shutil.rmtree(prom, ignore_errors=True)
    prom.mkdir(parents=True)
    run_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(prom)}
    if kind == "granian":  # as scripts/serve.sh starts the web role (adsite/ops/granian_server.py)
        run_env["ADSITE_WEB_READY_DIR"] = str(prom.parent / f"{prom.name}-ready")
        cmd = [PY, "-m", "adsite.ops.granian_server", "--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--log-level", "warning", "adsite.rsgi:application"]
    else:
        cmd = [PY, "-m", "gunicorn", "adsite.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
               "--log-level", "warning", "--config", str(cwd / "scripts" / "gunicorn.conf.py")]
    return _process(cmd, cwd=cwd, env=run_env, port=port)


@contextmanager
def celery_worker(env: dict[str, str], prom: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One Celery worker of this checkout (solo pool): the write side of stored answers."""
    from benchmarks.run import PY, ROOT

    shutil.rmtree(prom, ignore_errors=True)
    prom.mkdir(parents=True)
    proc = subprocess.Popen([PY, "-m", "celery", "-A", "adsite", "worker", "--pool=solo", "--loglevel=WARNING",
                             "--without-gossip", "--without-mingle", "--without-heartbeat"],
                            cwd=ROOT, env={**env, "PROMETHEUS_MULTIPROC_DIR": str(prom)}, start_new_session=True)
    try:
        yield proc
    finally:
        _stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(port: int) -> float:
    """User + system CPU time so far of the server started with ``--port <port>`` or ``--bind <host>:<port>`` (``_process``,
    ``adsite_server``: each in a session of its own) and of every process of its session (its workers):
    a request's cost that the load generator's share of the same cores does not blur, as req/s does."""
    stats: list[list[str]] = []
    leaders: set[int] = set()
    wanted = str(port).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        stats.append(fields)
        if any(arg == wanted or arg.endswith(b":" + wanted) for arg in command):  # --port N, --bind host:N
            leaders.add(int(entry))
    ticks = sum(int(f[11]) + int(f[12]) for f in stats if int(f[3]) in leaders)
    return ticks / os.sysconf("SC_CLK_TCK")


def worker_connections(port: int) -> list[int]:
    """The established connections to ``port`` that each process holds, most first (``ss``): how a server's
    workers shared the load generator's keep-alive connections (each worker answers its own connections only)."""
    listing = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, check=False).stdout
    held: dict[str, int] = {}
    for line in listing.splitlines():
        for pid in {part.split(",", 1)[0] for part in line.split("pid=")[1:]}:
            held[pid] = held.get(pid, 0) + 1
    return sorted(held.values(), reverse=True)


@contextmanager
def connection_split(port: int, after_s: float = 1.0) -> Iterator[list[int]]:
    """``worker_connections(port)`` read once, ``after_s`` into the block (a load running in it), into the list
    yielded: ``[6, 2]`` is 6 connections on one worker and 2 on the other."""
    split: list[int] = []
    timer = threading.Timer(after_s, lambda: split.extend(worker_connections(port)))
    timer.start()
    try:
        yield split
    finally:
        timer.cancel()
        timer.join()


def split_text(splits: list[list[int]]) -> str:
    return ", ".join("+".join(map(str, s)) or "?" for s in splits)


def post_fresh_events(port: int, users: list[str], round_no: int, auth: dict[str, str],
                      categories: tuple[str, ...] = FRESH_GENRES) -> int:
    """One page view for each user through ``POST /api/v1/events`` (batches of 50), in one of ``categories``;
    returns the events accepted. Raises when none was: a comparison without fresh events would say nothing of
    the write side."""
    import http.client
    import json
    import uuid

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {**auth, "Content-Type": "application/json", "User-Agent": "adsite-bench"}
    accepted = 0
    now = int(time.time() * 1000)
    try:
        for start in range(0, len(users), 50):
            events = [{"event_id": str(uuid.uuid4()), "type": "page_view", "user_id": user, "session_id": f"b-{user}",
                       "ts": now, "url": f"http://127.0.0.1/film/{round_no}-{user}/", "item_id": f"film-{round_no}",
                       "categories": [categories[(round_no + i) % len(categories)]]}
                      for i, user in enumerate(users[start:start + 50])]
            conn.request("POST", "/api/v1/events", body=json.dumps({"events": events}), headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            accepted += int(answer.get("accepted", 0))
    finally:
        conn.close()
    if not accepted:
        raise RuntimeError(f"no fresh event accepted: {answer}")
    return accepted


def worker_warm(port: int, users: list[str], auth: dict[str, str], worker_prom: Path,
                categories: tuple[str, ...] = FRESH_GENRES, timeout_s: float = 120.0) -> float:
    """One page view per user, then wait until the Celery worker has recomputed their stored answers (its
    ``inference_answers_recomputed_total`` no longer rises); seconds waited. Before any measured round: a
    worker's first recomputes load its models (seconds of CPU beside the web processes), which otherwise
    landed in the first round of this checkout alone, the older code predicting live without a worker."""
    from benchmarks.run import server_samples

    def recomputed() -> float:
        return sum(v for k, v in server_samples(worker_prom).items()
                   if k.startswith("inference_answers_recomputed_total{"))

    started = time.monotonic()
    before = recomputed()
    post_fresh_events(port, users, -1, auth, categories=categories)
    last, still_since = before, time.monotonic()
    while time.monotonic() - started < timeout_s:
        time.sleep(0.5)
        now = recomputed()
        if now != last:
            last, still_since = now, time.monotonic()
        elif now - before >= 0.9 * len(users) and time.monotonic() - still_since >= 1.0:
            break
    return time.monotonic() - started


def _median(results: list[LoadResult], attr: str) -> float:
    return statistics.median(getattr(r, attr) if attr != "rps" else r.rps for r in results)


def bench_peer() -> list[dict[str, str]]:
    from benchmarks.inference import MOVIELENS, _register_models, _trained
    from benchmarks.run import (
        BENCH_VAR,
        SECONDS,
        bar,
        fresh_state,
        load_average,
        manage,
        row,
        server_latency,
        server_samples,
    )

    if not MOVIELENS.is_dir() or not (PEER_DIR / "interest_service.py").is_file():
        return [row("peer", "skipped", f"{MOVIELENS} or {PEER_DIR}/interest_service.py not found")]
    venv = peer_venv()
    dirs = _trained()
    var_dir = BENCH_VAR / "peer"
    env = fresh_state(var_dir, services=True)
    env["INFERENCE_COMPILED_CACHE_DIR"] = str(BENCH_VAR / "compiled")
    manage(env, "import_events", "--format", "movielens", str(MOVIELENS), "--no-progress")
    _register_models(env, dirs, var_dir)
    token = manage(env, "create_api_token", "bench").stdout.strip()
    auth = {"Authorization": f"Token {token}", "Accept": "application/json"}
    kinds = server_kinds()
    peer_port = free_port()
    peer_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE", "REDIS"))}
    peer_cmd = [str(venv / "bin" / "uvicorn"), "interest_service:app", "--workers", "2", "--port", str(peer_port),
                "--log-level", "warning"]
    targets: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, str]] = []
    # the peer trains its model at start-up, in each worker: over 10 minutes at load average 15 on 2 cores
    with _process(peer_cmd, cwd=PEER_DIR, env=peer_env, port=peer_port, timeout=PEER_START_S) as port:
        targets["peer"] = {"port": port, "paths": [f"/users/{u}/interests?top=5" for u in USERS], "headers": {}}
        servers = [(kind, adsite_server(kind, env, var_dir / f"prom-{kind}")) for kind in kinds]
        entered: list[Any] = []
        worker = celery_worker(env, var_dir / "prom-worker")
        try:
            worker_proc = worker.__enter__()
            entered.append(worker)
            for kind, server in servers:
                targets[kind] = {"port": server.__enter__(), "prom": var_dir / f"prom-{kind}", "headers": auth,
                                 "paths": [f"/api/v1/users/{u}/interests?top=5" for u in USERS]}
                entered.append(server)
            for spec in targets.values():  # every worker past its first requests
                run_load(port=spec["port"], path=spec["paths"][0], paths=spec["paths"], headers=spec["headers"],
                         clients=CLIENTS, seconds=3, warmup=0)
            runs: dict[tuple[str, str], list[LoadResult]] = {}
            served: dict[str, list[Any]] = {k: [] for k in kinds}
            names = list(targets)
            cpu: dict[str, list[float]] = {name: [] for name in names}  # server CPU ms per interests request
            splits: dict[str, list[list[int]]] = {name: [] for name in names}  # connections per worker process
            writer = targets[kinds[0]]["port"]  # this checkout's server takes the fresh events
            worker_warm(writer, USERS, auth, var_dir / "prom-worker")
            fresh = 0
            worker_before = server_samples(var_dir / "prom-worker")
            worker_cpu = cpu_seconds(worker_proc.pid)
            for r in range(ROUNDS):
                fresh += post_fresh_events(writer, USERS, r, auth)
                time.sleep(FRESH_WAIT_S)
                order = names[r % len(names):] + names[: r % len(names)]
                for name in order:
                    spec = targets[name]
                    before = server_samples(spec["prom"]) if "prom" in spec else None
                    cpu_before = server_cpu_seconds(spec["port"])
                    with connection_split(spec["port"]) as split:
                        result = run_load(port=spec["port"], path=spec["paths"][0], paths=spec["paths"],
                                          headers=spec["headers"], clients=CLIENTS, seconds=SECONDS, warmup=0)
                    splits[name].append(split)
                    cpu[name].append((server_cpu_seconds(spec["port"]) - cpu_before) * 1000 / max(1, result.requests))
                    if before is not None:
                        time.sleep(0.2)
                        served[name].append(server_latency(before, server_samples(spec["prom"]), "user-interests"))
                    runs.setdefault((name, "interests"), []).append(result)
                    runs.setdefault((name, "healthz"), []).append(
                        run_load(port=spec["port"], path="/healthz", clients=CLIENTS, seconds=SECONDS, warmup=0))
            time.sleep(0.5)
            worker_cpu = cpu_seconds(worker_proc.pid) - worker_cpu
            recomputes = server_latency(worker_before, server_samples(var_dir / "prom-worker"), "none").counts(
                "inference_answers_recomputed_total", "served_by")
        finally:
            for server in reversed(entered):
                server.__exit__(None, None, None)
    rows.append(row("write side: fresh events before the rounds, the worker's recomputes",
                    f"{fresh:,} events; worker CPU {worker_cpu * 1000 / max(1, fresh):.2f} ms per event",
                    f"recomputed answers by model {recomputes}; {FRESH_WAIT_S:g} s wait before each round"))
    for (name, what), results in runs.items():
        rows.append(row(f"{name} GET {what} (median of {len(results)} rounds)",
                        f"p50 {_median(results, 'p50_ms'):.2f} ms, p99 {_median(results, 'p99_ms'):.2f} ms, "
                        f"{_median(results, 'rps'):,.0f} req/s"
                        + (f", server CPU {statistics.median(cpu[name]):.3f} ms a request" if what == "interests" else ""),
                        "rounds: " + "; ".join(f"{x.p50_ms:.1f}/{x.p99_ms:.1f} ms {x.rps:,.0f}/s" for x in results)
                        + (" (CPU " + ", ".join(f"{c:.3f}" for c in cpu[name]) + " ms; connections per worker "
                           + split_text(splits[name]) + ")" if what == "interests" else "")
                        + f"; errors {sum(x.errors for x in results)}; statuses "
                        + str({k: sum(x.statuses.get(k, 0) for x in results) for k in results[0].statuses})))
    for kind in kinds:
        total: dict[str, int] = {}
        for server in served[kind]:
            for model, n in server.counts("inference_served_total", "served_by").items():
                total[model] = total.get(model, 0) + n
        reads: dict[str, int] = {}
        for server in served[kind]:
            for outcome, n in server.counts("inference_stored_reads_total", "outcome").items():
                reads[outcome] = reads.get(outcome, 0) + n
        rows.append(row(f"{kind}: answers by model over its measured interests rounds",
                        ", ".join(f"{m} {n:,}" for m, n in sorted(total.items(), key=lambda x: -x[1])),
                        "stored answers: " + (", ".join(f"{o} {n:,} ({n / max(1, sum(reads.values())):.1%})"
                                                        for o, n in sorted(reads.items())) or "off")))
        neural = total.get("neural", 0) / max(1, sum(total.values()))
        mine, peer = runs[(kind, "interests")], runs[("peer", "interests")]
        bare = runs[(kind, "healthz")]
        ok = all(x.errors == 0 for x in mine)
        rows.append(bar(f"GET interests, adsite ({kind}) vs peer, same run", "p99 <= peer's and req/s >= peer's, neural > 90%",
                        f"p99 {_median(mine, 'p99_ms'):.1f} vs {_median(peer, 'p99_ms'):.1f} ms; "
                        f"{_median(mine, 'rps'):,.0f} vs {_median(peer, 'rps'):,.0f} req/s; neural {neural:.1%}; server CPU "
                        f"{statistics.median(cpu[kind]):.3f} vs {statistics.median(cpu['peer']):.3f} ms a request",
                        ok and _median(mine, "p99_ms") <= _median(peer, "p99_ms")
                        and _median(mine, "rps") >= _median(peer, "rps") and neural > 0.9))
        ratio = _median(mine, "p50_ms") / _median(bare, "p50_ms")
        rows.append(bar(f"GET interests vs own /healthz ({kind}), p50", "p50 <= 2x", f"{ratio:.2f}x "
                        f"({_median(mine, 'p50_ms'):.2f} vs {_median(bare, 'p50_ms'):.2f} ms)", ok and ratio <= 2))
    rows.append(row("peer section load average after", load_average()))
    return rows


SECTIONS = {"peer": bench_peer}
