"""Load to the knee, services mode: closed-loop clients at rising concurrency on ``/collect``, interests and
ad decisions, until p99 passes 100 ms; past it the site must shed (503 + ``Retry-After`` at once, from
``adsite/rsgi.py``'s in-flight bound) rather than let every answer wait behind a queue that grows with the
load, and what it accepted must all be stored.

The figures (requests/s, p50/p99/max, statuses per level) are written to the run's report for
docs/reliability.md, never asserted: the host is shared. Asserted: no 5xx other than the shed 503, every
shed answer names ``Retry-After``, and every event answered 202 is stored once.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from typing import Any

import pytest

from benchmarks.load import LoadResult, run_load
from benchmarks.stack import Stack, stream_drained, wait_for

pytestmark = [pytest.mark.faults]

LEVELS = (2, 8, 32, 128)  # concurrent keep-alive clients; 128 is past 2 web processes x MAX_IN_FLIGHT (32)
SECONDS = 4.0
BATCH = 20
USER = "f-knee-00"

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


def _figures(result: LoadResult, clients: int) -> dict[str, Any]:
    return {
        "clients": clients,
        "generator": result.generator,
        "rps": round(result.rps, 1),
        "p50_ms": round(result.p50_ms, 1),
        "p99_ms": round(result.p99_ms, 1),
        "max_ms": round(result.max_ms, 1),
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "transport_errors": result.extra.get("transport_errors", {}),
    }


def _knee(levels: list[dict[str, Any]]) -> dict[str, Any]:
    """The last level whose p99 was within 100 ms and the first past it."""
    within = [lv for lv in levels if lv["p99_ms"] <= 100]
    past = [lv for lv in levels if lv["p99_ms"] > 100]
    return {
        "rps_within_100ms": within[-1]["rps"] if within else None,
        "clients_within_100ms": within[-1]["clients"] if within else None,
        "first_past_100ms": {"clients": past[0]["clients"], "rps": past[0]["rps"], "p99_ms": past[0]["p99_ms"]}
        if past else None,
    }


def _side_probe(stack: Stack, stop: threading.Event, seen: list[tuple[int, str | None]]) -> None:
    """Plain requests beside the load, reading each answer's headers (wrk reads only the status)."""
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", stack.site.port, timeout=15)
        try:
            conn.request("GET", f"/api/v1/users/{USER}/interests?top=5",
                         headers={"Authorization": f"Token {stack.site.token}"})
            response = conn.getresponse()
            response.read()
            seen.append((response.status, response.getheader("Retry-After")))
        except OSError:
            seen.append((0, None))
        finally:
            conn.close()
        time.sleep(0.05)


def test_load_to_the_knee_then_the_site_sheds_with_retry_after_and_loses_nothing(stack: Stack, record: Any) -> None:
    site = stack.site
    auth = {"Authorization": f"Token {site.token}"}
    endpoints: dict[str, dict[str, Any]] = {
        "collect": {"path": "/collect", "method": "POST", "lua_body": COLLECT_LUA, "body_factory": _collect_body,
                    "headers": {"Content-Type": "text/plain", "Cookie": f"adsite_uid={USER}"}},
        "interests": {"path": f"/api/v1/users/{USER}/interests?top=5", "method": "GET", "headers": auth},
        "decisions": {"path": "/api/v1/ads/decisions", "method": "POST", "headers": {
            **auth, "Content-Type": "application/json"},
            "static_body": json.dumps({"user_id": USER, "placements": ["leaderboard", "sidebar"]}).encode()},
    }
    figures: dict[str, Any] = {"levels": list(LEVELS), "seconds_per_level": SECONDS}
    accepted_batches = 0
    probes: list[tuple[int, str | None]] = []
    for name, spec in endpoints.items():
        levels = []
        for clients in LEVELS:
            stop = threading.Event()
            prober = threading.Thread(target=_side_probe, args=(stack, stop, probes), daemon=True)
            if clients == LEVELS[-1]:
                prober.start()
            result = run_load(port=site.port, clients=clients, seconds=SECONDS, warmup=0, **spec)
            stop.set()
            time.sleep(3)  # what the load generator left in flight at its end is served before the next level
            if prober.is_alive():
                prober.join(timeout=30)
            levels.append(_figures(result, clients))
            if name == "collect":
                accepted_batches += result.statuses.get(202, 0)
        figures[name] = {"levels": levels, "knee": _knee(levels)}
    wait_for(lambda: stream_drained(stack.redis), timeout=180, what="event buffer drained")
    stored, copies = stack.postgres.query(
        "SELECT count(DISTINCT event_id), count(*) FROM tracking_event WHERE user_id = %s", (USER,))[0]
    figures.update(
        collect_accepted_events=accepted_batches * BATCH,
        collect_stored=int(stored),
        collect_stored_twice=int(copies) - int(stored),
        side_probes={"requests": len(probes), "statuses": sorted({p[0] for p in probes}),
                     "503_with_retry_after": sum(1 for p in probes if p[0] == 503 and p[1]),
                     "503_without_retry_after": sum(1 for p in probes if p[0] == 503 and not p[1])},
    )
    record("load_knee", figures)
    all_levels = [lv for name in endpoints for lv in figures[name]["levels"]]
    other_5xx = sum(n for lv in all_levels for code, n in lv["statuses"].items() if int(code) >= 500 and code != "503")
    shed = sum(lv["statuses"].get("503", 0) for lv in all_levels)
    assert other_5xx == 0, figures
    assert shed > 0, figures  # past the knee the site shed load instead of queueing it all
    assert figures["side_probes"]["503_without_retry_after"] == 0, figures
    # every batch answered 202 is stored; the load generator stops with up to `clients` requests in flight per
    # level, which the site may still store, unanswered to it
    assert figures["collect_accepted_events"] <= figures["collect_stored"], figures
    assert figures["collect_stored"] - figures["collect_accepted_events"] <= sum(LEVELS) * BATCH, figures
    assert figures["collect_stored_twice"] == 0, figures
