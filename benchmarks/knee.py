"""Load to the knee, services mode: the request rate at which p99 of ``/collect``, interests and ad decisions
passes 100 ms, measured so that a shared, loaded host does not decide the figure; then what the site does
past it (sheds with 503 + ``Retry-After``).

``python -m benchmarks.knee [--rounds 3] [--out var/knee/last-run.json]`` starts a stack of its own
(``benchmarks.stack``: Redis, a PostgreSQL cluster, the site with 2 web processes) and, in each round, steps
the offered load (wrk connections paced to 10, 20, 40, ... requests/s in all, Poisson arrivals:
``benchmarks/load.py``'s ``rate``). At every rate the three endpoints and a **peer**, ``/healthz`` (the same
server and Django handler, no work), are measured back to back in an order rotated each round, so the peer
sees the same moment of the host as the endpoints. Why this and not one ladder: with ~100 requests a step,
p99 is the step's slowest request, and on a host shared with other work one request stalled for a core moved
the knee of a single ladder to 3-8 requests/s. Here:

- each rate's figure is the **median over rounds** of the step's p99 (a stall spoils one round, not the
  median), and a step lasts long enough for at least 150 requests (5-15 s);
- the **knee** of an endpoint is the lowest rate whose median p99 passes 100 ms; it is called the site's only
  if the peer's median p99 at that rate is within 100 ms (otherwise the host was the bound: ``host_bound``);
- an endpoint stops climbing in a round once a step could not keep half its rate or its p99 passed 2 s.

Then, per endpoint, 128 closed-loop connections for 4 s (past 2 processes x ``MAX_IN_FLIGHT`` 32): the shed
503s and the p99 of the answers the site did give (``overload``; the fault battery's
``tests/faults/test_load_knee.py`` asserts this part). At the end the ``/collect`` events are counted by id.
Exits non-zero on a 5xx other than the shed 503, or an event answered 202 and not stored, or stored twice.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.load import LoadResult, run_load
from benchmarks.stack import Site, Stack, stack_up, stream_drained, wait_for

RATES = (5, 10, 20, 40, 80, 160, 320, 640)
PACED_CLIENTS = 24  # below 2 web processes x MAX_IN_FLIGHT (32): the steps measure queueing, never shedding
MIN_REQUESTS = 150  # per step: p99 is then the 2nd-worst request, not the worst
P99_BOUND_MS = 100.0
OVERLOAD_CLIENTS = 128  # closed loop, past 2 x MAX_IN_FLIGHT: the site must shed
OVERLOAD_SECONDS = 4.0
BATCH = 20
USER = "f-knee-00"
PEER = "healthz"

# /collect bodies for wrk: BATCH events of USER (the identity cookie's visitor), ids unique per run and request
COLLECT_LUA = r"""
function body(n)
  local now = os.time() * 1000
  local events = {}
  for i = 0, LAST do
    events[#events + 1] = string.format(
      '{"event_id": "%08x-%04x-4%03x-a000-%012d", "type": "page_view", "user_id": "USER", "session_id": "s-%d", '
      .. '"ts": %d, "url": "https://example.org/article/%d", "item_id": "article-%d", "categories": ["travel"]}',
      run_id, thread_id, i, n, thread_id, now, i, i)
  end
  return '{"events": [' .. table.concat(events, ", ") .. ']}'
end
""".replace("LAST", str(BATCH - 1)).replace("USER", USER)


def _collect_body(client: int, n: int) -> bytes:
    now = int(time.time() * 1000)
    events = [{"event_id": str(uuid.uuid4()), "type": "page_view", "user_id": USER, "session_id": f"s-{client}",
               "ts": now, "url": f"https://example.org/article/{i}", "item_id": f"article-{i}",
               "categories": ["travel"]} for i in range(BATCH)]
    return json.dumps({"events": events}).encode()


def endpoints(site: Site, *, peer: bool = False) -> dict[str, dict[str, Any]]:
    """``run_load`` keyword arguments per endpoint (and the peer, ``/healthz``, when asked)."""
    auth = {"Authorization": f"Token {site.token}"}
    specs: dict[str, dict[str, Any]] = {
        "collect": {"path": "/collect", "method": "POST", "lua_body": COLLECT_LUA, "body_factory": _collect_body,
                    "headers": {"Content-Type": "text/plain", "Cookie": f"adsite_uid={USER}"}},
        "interests": {"path": f"/api/v1/users/{USER}/interests?top=5", "method": "GET", "headers": auth},
        "decisions": {"path": "/api/v1/ads/decisions", "method": "POST", "headers": {
            **auth, "Content-Type": "application/json"},
            "static_body": json.dumps({"user_id": USER, "placements": ["leaderboard", "sidebar"]}).encode()},
    }
    if peer:
        specs[PEER] = {"path": "/healthz", "method": "GET", "headers": {}}
    return specs


def figures(result: LoadResult, clients: int, rate: float | None = None) -> dict[str, Any]:
    return {
        "clients": clients,
        "target_rps": rate,
        "requests": result.requests,
        "seconds": round(result.seconds, 1),
        "generator": result.generator,
        "rps": round(result.rps, 1),
        "p50_ms": round(result.p50_ms, 1),
        "p99_ms": round(result.p99_ms, 1),
        "max_ms": round(result.max_ms, 1),
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "transport_errors": result.extra.get("transport_errors", {}),
    }


def cpu_seconds(site: Site) -> dict[str, float]:
    """CPU seconds (user + system, all threads) used so far by the web processes and by every process of the
    site (web, Celery worker and beat, supervisord; not Redis or PostgreSQL)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"web": 0.0, "site": 0.0}
    for proc in site.processes():
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        used["site"] += seconds
        if proc.role == "web-worker":
            used["web"] += seconds
    return used


def idle_cpu(site: Site, seconds: float = 15.0) -> dict[str, float]:
    """CPU seconds per second the site spends with no requests (registry polling, the worker's scheduled
    flushes and rollups): taken off each step's CPU before dividing by its requests."""
    before = cpu_seconds(site)
    time.sleep(seconds)
    after = cpu_seconds(site)
    return {part: (after[part] - before[part]) / seconds for part in before}


IDLE: dict[str, float] = {"web": 0.0, "site": 0.0}


def step(site: Site, spec: dict[str, Any], rate: int) -> dict[str, Any]:
    """One paced step at ``rate`` requests/s; a short pause after it, so what the generator left in flight is
    answered before the next step. With the CPU time the site spent per request over the step and its pause:
    unlike the latencies, hardly inflated by waiting for a core on a busy host."""
    clients = max(2, min(PACED_CLIENTS, rate // 2))
    seconds = min(15.0, max(5.0, MIN_REQUESTS / rate))
    cpu_before, started = cpu_seconds(site), time.monotonic()
    result = run_load(port=site.port, clients=clients, seconds=seconds, warmup=0, rate=rate, **spec)
    time.sleep(1)
    cpu_after, took = cpu_seconds(site), time.monotonic() - started
    row = figures(result, clients, rate)
    for part in ("web", "site"):
        busy = cpu_after[part] - cpu_before[part] - IDLE[part] * took
        row[f"{part}_cpu_ms_per_request"] = round(1000 * max(0.0, busy) / max(1, result.requests), 2)
    return row


def overload(site: Site, spec: dict[str, Any]) -> dict[str, Any]:
    """``OVERLOAD_CLIENTS`` closed-loop connections for ``OVERLOAD_SECONDS``."""
    result = run_load(port=site.port, clients=OVERLOAD_CLIENTS, seconds=OVERLOAD_SECONDS, warmup=0, **spec)
    return figures(result, OVERLOAD_CLIENTS)


def summarize(steps: dict[str, dict[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per endpoint and rate the medians over rounds; per endpoint the knee (module docstring)."""
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for name, by_rate in steps.items():
        table[name] = {
            rate: {
                "rounds": len(runs),
                "rps": round(statistics.median(r["rps"] for r in runs), 1),
                "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 1),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 1),
                "p99_ms_each_round": [r["p99_ms"] for r in runs],
                "web_cpu_ms_per_request": round(statistics.median(r["web_cpu_ms_per_request"] for r in runs), 2),
                "site_cpu_ms_per_request": round(statistics.median(r["site_cpu_ms_per_request"] for r in runs), 2),
            }
            for rate, runs in sorted(by_rate.items())
        }
    knees: dict[str, Any] = {}
    peer = table.get(PEER, {})
    for name, rows in table.items():
        within = [rate for rate, row in rows.items() if row["p99_ms"] <= P99_BOUND_MS]
        past = [rate for rate, row in rows.items() if row["p99_ms"] > P99_BOUND_MS]
        first_past = min(past) if past else None
        below = [rate for rate in within if first_past is None or rate < first_past]
        peer_row = peer.get(first_past) if first_past is not None else None
        knees[name] = {
            "last_within_100ms": {"target_rps": max(below), **rows[max(below)]} if below else None,
            "first_past_100ms": {"target_rps": first_past, **rows[first_past]} if first_past is not None else None,
            "peer_p99_ms_there": peer_row["p99_ms"] if peer_row else None,
            "host_bound": bool(peer_row and peer_row["p99_ms"] > P99_BOUND_MS) if name != PEER else None,
            "never_past_100ms_up_to": max(rows) if first_past is None and rows else None,
        }
    return {"by_rate": {n: {str(r): row for r, row in rows.items()} for n, rows in table.items()}, "knee": knees}


def measure(stack: Stack, *, rounds: int, rates: tuple[int, ...] = RATES) -> dict[str, Any]:
    site = stack.site
    specs = endpoints(site, peer=True)
    names = list(specs)
    steps: dict[str, dict[int, list[dict[str, Any]]]] = {name: {} for name in names}
    load_average: list[list[float]] = []
    accepted_batches = 0
    in_flight_at_ends = 0  # /collect requests the generator may have left unanswered at a step's end
    for spec in specs.values():  # warm-up, not recorded: first requests of each process and path
        run_load(port=site.port, clients=2, seconds=2, warmup=0, **spec)
    time.sleep(1)
    IDLE.update(idle_cpu(site))
    started = time.monotonic()
    for round_no in range(rounds):
        order = names[round_no % len(names):] + names[:round_no % len(names)]
        climbing = set(names)
        load_average.append([round(x, 1) for x in os.getloadavg()])
        for rate in rates:
            for name in order:
                if name not in climbing:
                    continue
                row = step(site, specs[name], rate)
                row["round"] = round_no
                steps[name].setdefault(rate, []).append(row)
                if name == "collect":
                    accepted_batches += row["statuses"].get("202", 0)
                    in_flight_at_ends += row["clients"]
                if row["rps"] < 0.5 * rate or row["p99_ms"] > 2000:
                    climbing.discard(name)
            print(f"round {round_no + 1}/{rounds}, {rate} requests/s: "
                  + ", ".join(f"{n} p99 {steps[n][rate][-1]['p99_ms']} ms" for n in order if rate in steps[n]
                              and steps[n][rate][-1]["round"] == round_no), file=sys.stderr, flush=True)
    load_average.append([round(x, 1) for x in os.getloadavg()])
    shed = {}
    for name in names[:-1]:
        shed[name] = overload(site, specs[name])
        time.sleep(2)
        if name == "collect":
            accepted_batches += shed[name]["statuses"].get("202", 0)
            in_flight_at_ends += OVERLOAD_CLIENTS
    wait_for(lambda: stream_drained(stack.redis), timeout=300, what="event buffer drained")
    stored, copies = stack.postgres.query(
        "SELECT count(DISTINCT event_id), count(*) FROM tracking_event WHERE user_id = %s", (USER,))[0]
    all_levels = [row for by_rate in steps.values() for runs in by_rate.values() for row in runs] + list(shed.values())
    return {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "rounds": rounds,
        "rates": list(rates),
        "paced_clients": PACED_CLIENTS,
        "min_requests_per_step": MIN_REQUESTS,
        "stack_started_s": round(stack.started_s, 1),
        "idle_cpu_s_per_s": {part: round(v, 3) for part, v in IDLE.items()},
        "measured_s": round(time.monotonic() - started, 1),
        "load_average_per_round": load_average,
        **summarize(steps),
        "steps": {n: {str(r): runs for r, runs in by_rate.items()} for n, by_rate in steps.items()},
        "overload": shed,
        "collect_accepted_events": accepted_batches * BATCH,
        "collect_stored": int(stored),
        "collect_stored_twice": int(copies) - int(stored),
        "collect_in_flight_at_ends_events": in_flight_at_ends * BATCH,
        "other_5xx": sum(n for lv in all_levels for code, n in lv["statuses"].items()
                         if int(code) >= 500 and code != "503"),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = ["| endpoint | last rate within 100 ms: achieved req/s, p50 / p99 | first rate past 100 ms: achieved "
             "req/s, p50 / p99 (each round) | peer `/healthz` p99 there | CPU ms per request, idle taken off: "
             "web / site (median, 5-20 req/s) | 128 clients: answered / shed 503, p99 |",
             "|---|---|---|---|---|---|"]
    for name, knee in report["knee"].items():
        def cell(row: dict[str, Any] | None, rounds: bool = False) -> str:
            if not row:
                return "none"
            each = f" ({', '.join(str(p) for p in row['p99_ms_each_round'])})" if rounds else ""
            return f"{row['target_rps']}: {row['rps']}, {row['p50_ms']} / {row['p99_ms']} ms{each}"
        past = cell(knee["first_past_100ms"], True) if knee["first_past_100ms"] else (
            f"none up to {knee['never_past_100ms_up_to']}")
        shed = report["overload"].get(name)
        shed_cell = "-" if not shed else (
            f"{sum(v for k, v in shed['statuses'].items() if k != '503')} / {shed['statuses'].get('503', 0)}, "
            f"{shed['p99_ms']} ms")
        peer = knee["peer_p99_ms_there"]
        low = [row for rate, row in report["by_rate"][name].items() if int(rate) <= 20]
        cpu = (f"{statistics.median(r['web_cpu_ms_per_request'] for r in low):.1f} / "
               f"{statistics.median(r['site_cpu_ms_per_request'] for r in low):.1f}") if low else "-"
        lines.append(f"| {name} | {cell(knee['last_within_100ms'])} | {past} | "
                     f"{'-' if peer is None else f'{peer} ms'}{' (host-bound)' if knee['host_bound'] else ''} "
                     f"| {cpu} | {shed_cell} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rates", default=",".join(str(r) for r in RATES), help="requests/s, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("var/knee/last-run.json"))
    args = parser.parse_args()
    rates = tuple(int(r) for r in args.rates.split(","))
    with stack_up(TRACKING_FLUSH_SECONDS="1", LOG_LEVEL="WARNING") as stack:
        report = measure(stack, rounds=args.rounds, rates=rates)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True))
    print(markdown(report))
    print(f"\nload average per round: {report['load_average_per_round']}; measured {report['measured_s']} s; "
          f"collect: {report['collect_accepted_events']} answered 202, {report['collect_stored']} stored, "
          f"{report['collect_stored_twice']} twice; other 5xx {report['other_5xx']}")
    lost = report["collect_accepted_events"] > report["collect_stored"]
    return 1 if lost or report["collect_stored_twice"] or report["other_5xx"] else 0


if __name__ == "__main__":
    sys.exit(main())
