"""A small closed-loop HTTP load generator: C concurrent keep-alive clients for D seconds.

Clients run in separate processes (so the generator's own GIL does not cap the rate) and report every
request's latency; the caller gets throughput and latency percentiles. Loopback only.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

BodyFactory = Callable[[int, int], bytes]


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _client(port: int, method: str, path: str, headers: dict[str, str], body_factory: BodyFactory | None,
            client_no: int, seconds: float, warmup: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    n = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + seconds
    while True:
        now = time.perf_counter()
        if now >= stop:
            break
        body = body_factory(client_no, n) if body_factory else None
        n += 1
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            status = 0
        t1 = time.perf_counter()
        if t0 >= measure_from:
            latencies.append((t1 - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 0 or status >= 500:
                errors += 1
    queue.put((latencies, statuses, errors))


def run_load(*, port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None,
             body_factory: BodyFactory | None = None, clients: int = 8, seconds: float = 10.0,
             warmup: float = 1.0) -> LoadResult:
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [
        ctx.Process(target=_client, args=(port, method, path, headers or {}, body_factory, i, seconds, warmup, queue))
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    for _ in procs:
        lat, st, err = queue.get()
        latencies.extend(lat)
        errors += err
        for code, count in st.items():
            statuses[code] = statuses.get(code, 0) + count
    for proc in procs:
        proc.join()
    latencies.sort()
    if not latencies:
        return LoadResult(0, errors, seconds, 0.0, 0.0, 0.0, statuses)
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return LoadResult(len(latencies), errors, seconds, q[49], q[94], q[98], statuses)
