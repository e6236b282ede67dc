"""``make bench``: the benchmarks, run against real servers on loopback.

Each section starts what it measures from scratch (its own SQLite file or PostgreSQL database, its own
Redis database number), prints a Markdown table row per figure, and the whole run is written as JSON to
``var/bench/results.json``. Record the figures, the machine and the date in docs/benchmarks.md.

    python -m benchmarks.run [--only collect_embedded,collect_services,flush,import,training,predict,neural_slow,interests_http,analytics]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import SHARED_DATA
from benchmarks.inference import SECTIONS as inference_sections
from benchmarks.load import LoadResult, run_load
from benchmarks.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SHARED = SHARED_DATA
BENCH_VAR = Path(os.environ.get("BENCH_VAR", "/tmp/adsite-bench"))
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/adsite_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))


def base_env(var_dir: Path, services: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"ADSITE_VAR_DIR": str(var_dir), "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
                "DJANGO_SECURE_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING",
                # the API's throttles run; their rates are not what is measured
                "API_THROTTLE_DECISIONS": "100000000/minute", "API_THROTTLE_INTERESTS": "100000000/minute",
                # one load generator on one address is far above any person's rate: the anonymous
                # endpoints' limits would answer it 429
                "ADSITE_RATE_LIMITS": "0"})
    if services:
        env.update({"DATABASE_URL": PG_URL, "REDIS_URL": REDIS_URL})
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)


def fresh_state(var_dir: Path, services: bool) -> dict[str, str]:
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    env = base_env(var_dir, services)
    if services:
        services_state_empty(PG_URL, REDIS_URL)
    manage(env, "migrate", "--noinput", "-v", "0")
    return env


def services_state_empty(database_url: str, redis_url: str) -> None:
    """The PostgreSQL database of ``database_url`` made anew (empty) and the Redis database of ``redis_url``
    flushed."""
    name = database_url.rsplit("/", 1)[1]
    for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c", sql],
                       check=True, capture_output=True)
    import redis

    redis.Redis.from_url(redis_url).flushdb()


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 1, threads: int = 1, config: str | None = None) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-m", "gunicorn", "adsite.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         "--threads", str(threads), "--log-level", "warning", *(["--config", config] if config else [])],
        cwd=ROOT, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def collect_cookie(client: int, n: int) -> dict[str, str]:
    """The identity cookie of the visitor whose batch ``collect_body(client, n)`` is: a browser's events are
    its own visitor's (without it /collect quarantines them as ``no_identity_cookie``)."""
    return {"Cookie": f"adsite_uid=bench-{client}-{n % 50}"}


def collect_body(batch: int) -> Callable[[int, int], bytes]:
    """``batch`` events of one visitor (``collect_cookie``'s) per request."""

    def factory(client: int, n: int) -> bytes:
        now = int(time.time() * 1000)
        events = [
            {"event_id": str(uuid.uuid4()), "type": "page_view", "user_id": f"bench-{client}-{n % 50}",
             "session_id": f"s-{client}", "ts": now, "url": f"http://127.0.0.1/articles/a-{i}/",
             "item_id": f"a-{i}", "categories": ["technology-computing" if i % 2 else "travel"]}
            for i in range(batch)
        ]
        return json.dumps({"events": events}).encode()

    return factory


def warm_sequentially(port: int, path: str, headers: dict[str, str], body: Callable[[int, int], bytes],
                      *, n: int, header_factory: Callable[[int, int], dict[str, str]] | None = None) -> None:
    """``n`` POSTs one after another, long timeout (a cold worker's first answers are slow)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for i in range(n):
            conn.request("POST", path, body=body(99, i),
                         headers={**headers, **header_factory(99, i)} if header_factory else headers)
            response = conn.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    finally:
        conn.close()


def collect_lua(batch: int) -> str:
    """The same body as ``collect_body`` for wrk: ``batch`` events with ids unique per run, thread, request."""
    return r"""
function body(n)
  local now = os.time() * 1000
  local events = {}
  -- the batch is one visitor's, and the request carries that visitor's identity cookie
  wrk.headers["Cookie"] = string.format("adsite_uid=bench-%d-%d", thread_id, n % 50)
  for i = 0, LAST do
    local cat = (i % 2 == 1) and "technology-computing" or "travel"
    events[#events + 1] = string.format(
      '{"event_id": "%08x-%04x-4%03x-a000-%012d", "type": "page_view", "user_id": "bench-%d-%d", '
      .. '"session_id": "s-%d", "ts": %d, "url": "http://127.0.0.1/articles/a-%d/", "item_id": "a-%d", '
      .. '"categories": ["%s"]}',
      run_id, thread_id, i, n, thread_id, n % 50, thread_id, now, i, i, cat)
  end
  return '{"events": [' .. table.concat(events, ", ") .. ']}'
end
""".replace("LAST", str(batch - 1))


def row(name: str, value: str, note: str = "") -> dict[str, str]:
    print(f"| {name} | {value} | {note} |", flush=True)
    return {"name": name, "value": value, "note": note}


BARS: list[dict[str, str]] = []  # the issues' bars measured in this run, printed as the summary at the end


def bar(name: str, bar_text: str, measured: str, met: bool, note: str = "") -> dict[str, str]:
    """A figure judged against an issue's bar: a table row now, and a line of the summary."""
    verdict = "met" if met else "NOT met"
    entry = {"name": name, "value": measured, "note": f"{bar_text}: {verdict}" + (f"; {note}" if note else ""),
             "bar": bar_text, "met": verdict}
    BARS.append(entry)
    print(f"| {name} | {measured} | {entry['note']} |", flush=True)
    return entry


def summary(started: datetime, load_before: str) -> str:
    """Markdown for docs/benchmarks.md: the bars of this run with the date, load and generator."""
    from benchmarks.load import wrk_path

    generator = "wrk (C, on the same host)" if wrk_path() else "Python client processes (wrk not on PATH, or BENCH_LOAD_GENERATOR=python)"
    lines = [
        f"Run {started:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores; load average (1/5/15 min) "
        f"{load_before} before, {load_average()} after; load generator: {generator}; "
        f"{SECONDS:g} s per measurement.",
        "",
        "| bar | measured | verdict |",
        "|---|---|---|",
        *(f"| {b['name']}: {b['bar']} | {b['value']} | **{b['met']}** |" for b in BARS),
    ]
    return "\n".join(lines)


def server_samples(prom_dir: Path) -> dict[str, float]:
    """The cumulative metric samples of every gunicorn worker writing to ``prom_dir`` (what /metrics shows),
    keyed as the dashboard keys them."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from adsite.dashboard.series import series_key

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(prom_dir))
    values: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            key = series_key(sample.name, {k: v for k, v in sample.labels.items() if k != "pid"})
            values[key] = values.get(key, 0.0) + float(sample.value)
    return values


@dataclass(frozen=True)
class ServerLatency:
    """A route's latency measured in the workers (``http_request_seconds``) between two samples: from the
    request reaching Django's middleware to its response, without the wait for a free worker."""

    count: int
    p50_ms: float | None
    p99_ms: float | None
    within: dict[float, float]  # bucket bound (ms) -> share of requests answered within it
    deltas: dict[str, float] = field(default_factory=dict)  # every series' increase over the same load

    def share_within(self, ms: float) -> float:
        return self.within[ms]

    def counts(self, metric: str, label: str) -> dict[str, int]:
        """A counter's increase over the load by one label's value, e.g. answers by ``served_by``."""
        from adsite.dashboard.series import key_parse

        out: dict[str, int] = {}
        for key, value in self.deltas.items():
            name, labels = key_parse(key)
            if name == metric and value and label in labels:
                out[labels[label]] = out.get(labels[label], 0) + int(value)
        return out


def server_latency(before: dict[str, float], after: dict[str, float], route: str,
                   bounds_ms: tuple[float, ...] = (5.0, 10.0)) -> ServerLatency:
    from prometheus_client.utils import floatToGoString

    from adsite.dashboard.series import counter_deltas, histogram_quantiles, series_key

    deltas = counter_deltas(before, after)
    q = histogram_quantiles(deltas, "http_request_seconds", (0.5, 0.99), route=route)
    count = deltas.get(series_key("http_request_seconds_count", {"route": route}), 0.0)
    within = {
        ms: (deltas.get(series_key("http_request_seconds_bucket", {"le": floatToGoString(ms / 1000.0), "route": route}), 0.0)
             / count if count else 0.0)
        for ms in bounds_ms
    }
    p50, p99 = (None if (v := q[x]) is None else v * 1000.0 for x in (0.5, 0.99))
    return ServerLatency(int(count), p50, p99, within, deltas)


def measured_load(prom_dir: Path, route: str, **load: Any) -> tuple[LoadResult, ServerLatency]:
    """``run_load(**load)`` and the same requests' server-side latency from the workers' metrics in
    ``prom_dir`` (a one-second warm-up load first, left out of both)."""
    run_load(**{**load, "seconds": 1.0, "warmup": 0})
    time.sleep(0.2)  # requests the warm-up abandoned finish before the first sample
    before = server_samples(prom_dir)
    result = run_load(**{**load, "warmup": 0})
    time.sleep(0.2)  # and those the measurement abandoned before the second
    return result, server_latency(before, server_samples(prom_dir), route)


def served_row(name: str, server: ServerLatency) -> dict[str, str]:
    """Which model answered the predictions of a measured load (``inference_served_total`` of every worker):
    a chain that falls back under load does less per request, so a latency without this says little."""
    served = server.counts("inference_served_total", "served_by")
    reasons = server.counts("inference_fallbacks_total", "reason")
    total = sum(served.values())
    shares = ", ".join(
        f"{model} {n:,} ({n / total:.1%})" for model, n in sorted(served.items(), key=lambda x: -x[1])
    )
    return row(name, shares or "none counted", f"{total:,} predictions; fallback reasons {reasons or 'none'}")


def load_row(name: str, result: LoadResult, per_request: int = 1, note: str = "") -> dict[str, str]:
    events = result.rps * per_request
    value = (f"{events:,.0f} events/s" if per_request > 1 else f"{result.rps:,.0f} req/s") + (
        f"; p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms; statuses {result.statuses}")
    load = (f"generator {result.generator}, {result.requests:,} requests in {result.seconds:.1f} s, "
            f"errors {result.errors}, load average {load_average()}")
    return row(name, value, f"{note}; {load}" if note else load)


def load_average() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def bench_collect(services: bool) -> list[dict[str, str]]:
    mode = "services" if services else "embedded"
    env = fresh_state(BENCH_VAR / f"collect-{mode}", services)
    threads = 1 if services else 4
    with gunicorn(env, workers=1, threads=threads) as port:
        # a cold process's first batches take seconds (imports, first writes); sent one by one here, so
        # they are neither measured nor left running into the measured window (wrk abandons in-flight
        # requests at the end of its warm-up run)
        warm_sequentially(port, "/collect", {"Content-Type": "text/plain"}, collect_body(50), n=20,
                          header_factory=collect_cookie)
        result = run_load(port=port, path="/collect", method="POST",
                          headers={"Content-Type": "text/plain"}, body_factory=collect_body(50),
                          header_factory=collect_cookie, lua_body=collect_lua(50),
                          clients=4, seconds=SECONDS)
    out = [load_row(f"/collect, {mode}, 1 web process, 50-event batches, 4 clients", result, 50)]
    events = result.rps * 50
    out.append(bar(f"/collect, {mode}", "10,000 events/s per web process (issue 2's aim)", f"{events:,.0f} events/s",
                   events >= 10_000 and result.errors == 0, f"p99 {result.p99_ms:.1f} ms per request"))
    if services:
        started = time.perf_counter()
        flushed = manage(env, "flush_events").stdout.strip()
        elapsed = time.perf_counter() - started
        ledger = json.loads(manage(env, "ledger", "--json").stdout)
        stored = int(ledger.get("stored", 0))
        out.append(row("flush Redis stream -> PostgreSQL (manage.py flush_events, incl. ~1 s start-up)",
                       f"{stored:,} events in {elapsed:.1f} s = {stored / elapsed:,.0f} events/s", flushed[-200:]))
    return out


def bench_import() -> list[dict[str, str]]:
    movielens = SHARED / "movielens-latest-small"
    if not movielens.is_dir():
        return [row("import", "skipped", f"{movielens} not found")]
    env = fresh_state(BENCH_VAR / "import", services=False)
    started = time.perf_counter()
    manage(env, "import_events", "--format", "movielens", str(movielens), "--no-features")
    elapsed = time.perf_counter() - started
    ledger = json.loads(manage(env, "ledger", "--json").stdout)
    stored = int(ledger.get("stored", 0))
    return [row("import_events --format movielens into SQLite (whole command incl. Django start-up)",
                f"{stored:,} events in {elapsed:.2f} s = {stored / elapsed:,.0f} events/s")]


SECTIONS: dict[str, Callable[[], list[dict[str, str]]]] = {
    "collect_embedded": lambda: bench_collect(False),
    "collect_services": lambda: bench_collect(True),
    "import": bench_import,
}
SECTIONS.update(inference_sections)  # training, predict, neural_slow, interests_http (benchmarks/inference.py)


def _ads_decisions() -> list[dict[str, str]]:
    from benchmarks.ads import bench_decisions  # imports this module: loaded on demand

    return bench_decisions(services=True)


SECTIONS["ads_decisions"] = _ads_decisions  # Redis + PostgreSQL, gunicorn 2 workers, 8 clients (benchmarks/ads.py)


def _peer() -> list[dict[str, str]]:
    from benchmarks.peer import bench_peer  # imports this module: loaded on demand

    return bench_peer()


SECTIONS["peer"] = _peer  # adsite vs the FastAPI + LightGBM peer, rounds interleaved (benchmarks/peer.py)


def bench_analytics() -> list[dict[str, str]]:
    """The dashboard's rollups and reads over six months of traffic (benchmarks/analytics.py), on
    PostgreSQL, at a tenth of the volume docs/benchmarks.md reports (150 visits a day: cheap enough here)."""
    env = fresh_state(BENCH_VAR / "analytics", services=True)
    out = BENCH_VAR / "analytics" / "figures.json"
    subprocess.run([PY, "-m", "benchmarks.analytics", "--days", "180", "--visits-per-day",
                    os.environ.get("BENCH_ANALYTICS_VISITS", "150"), "--repeat", "3", "--json", str(out),
                    "--var", str(BENCH_VAR / "analytics")], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    figures = json.loads(out.read_text())
    return [row(f"dashboard, {figures['days']} days x {figures['visits_per_day']} visits/day: {r['what']}", r["figure"],
                r["note"]) for r in figures["rows"]]


SECTIONS["analytics"] = bench_analytics  # PostgreSQL (benchmarks/analytics.py)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="", help="comma-separated section names")
    args = parser.parse_args()
    wanted = [s for s in args.only.split(",") if s] or list(SECTIONS)
    started, load_before = datetime.now(UTC), load_average()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; date {started:%Y-%m-%d %H:%M} UTC; load average {load_before}\n")
    print("| benchmark | figure | note |\n|---|---|---|")
    results: dict[str, list[dict[str, str]]] = {}
    for name in wanted:
        try:
            results[name] = SECTIONS[name]()
        except Exception as exc:  # a failing section is reported, the others still run
            results[name] = [row(name, "FAILED", repr(exc)[:300])]
    out = ROOT / "var" / "bench" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = summary(started, load_before)
    if BARS:
        print("\n## Summary (markdown for docs/benchmarks.md)\n\n" + text)
    out.write_text(json.dumps({"date": datetime.now(UTC).isoformat(), "results": results, "summary": text}, indent=2))


if __name__ == "__main__":
    # run as benchmarks.run itself, not as a second copy named __main__: the sections import
    # benchmarks.run (bar(), BARS, SECONDS), and the summary must see what they recorded
    from benchmarks.run import main as module_main

    module_main()
