"""The benchmarks' server-side latency: read from the workers' multiprocess metrics files, between two samples."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from benchmarks.run import served_row, server_latency, server_samples

# two "workers" (processes) observing the route's latency into one multiprocess directory
WORKER = """
import sys
from adsite.ops.metrics import HTTP_REQUEST_SECONDS
for seconds in map(float, sys.argv[1:]):
    HTTP_REQUEST_SECONDS.labels("ads-decisions").observe(seconds)
"""


def _worker(prom_dir, *seconds: float) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(prom_dir), "PATH": ""}
    subprocess.run([sys.executable, "-c", WORKER, *map(str, seconds)], check=True, env=env)


def test_latency_counts_only_the_requests_between_the_samples_of_every_worker(tmp_path):
    _worker(tmp_path, *([0.5] * 50))  # the warm-up: slow, before the first sample
    before = server_samples(tmp_path)
    _worker(tmp_path, *([0.002] * 99))
    _worker(tmp_path, 0.02)  # the other worker: one request over 10 ms
    measured = server_latency(before, server_samples(tmp_path), "ads-decisions")
    assert measured.count == 100
    assert measured.share_within(10.0) == pytest.approx(0.99)
    assert measured.share_within(5.0) == pytest.approx(0.99)
    assert 1.0 <= measured.p50_ms <= 2.0  # inside the 1-2 ms bucket
    assert measured.p99_ms <= 2.0  # the 99th of 100 is still a 2 ms request


def test_a_route_without_requests_has_no_percentiles(tmp_path):
    _worker(tmp_path, 0.001)
    measured = server_latency(server_samples(tmp_path), server_samples(tmp_path), "ads-decisions")
    assert measured.count == 0 and measured.p99_ms is None and measured.share_within(10.0) == 0.0


SERVED = """
import sys
from inference.serving import metrics
for served_by in sys.argv[1:]:
    metrics.SERVED_TOTAL.labels(served_by).inc()
    if served_by != "neural":
        metrics.FALLBACKS_TOTAL.labels("over_budget").inc()
"""


def test_answers_by_model_count_only_the_load_between_the_samples(tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": ""}
    subprocess.run([sys.executable, "-c", SERVED, *(["neural"] * 30)], check=True, env=env)  # warm-up
    before = server_samples(tmp_path)
    subprocess.run([sys.executable, "-c", SERVED, *(["neural"] * 3), "gbdt"], check=True, env=env)
    measured = server_latency(before, server_samples(tmp_path), "user-interests")
    assert measured.counts("inference_served_total", "served_by") == {"neural": 3, "gbdt": 1}
    row = served_row("answers", measured)
    assert row["value"] == "neural 3 (75.0%), gbdt 1 (25.0%)"
    assert "{'over_budget': 1}" in row["note"]


# a "server": started with --port in a session of its own, it forks a worker that burns CPU until its own
# CPU clock reads 0.5 s, then both wait to be stopped
SERVER = """
import os, sys, time
if os.fork() == 0:
    while time.process_time() < 0.5:
        pass
    open(sys.argv[1], "w").close()
time.sleep(60)
"""


def test_a_servers_cpu_time_sums_its_workers_and_nothing_else(tmp_path):
    from benchmarks.peer import server_cpu_seconds

    started = []
    try:
        for port, name in ((47811, "server"), (47812, "other")):
            started.append(subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path / name), "--port", str(port)],
                                            start_new_session=True))
        for name in ("server", "other"):
            while not (tmp_path / name).exists():
                assert all(p.poll() is None for p in started)
                time.sleep(0.01)
        # the worker's 0.5 s and the leader's start-up, not the other server's 0.5 s too (the kernel counts in
        # clock ticks, so allow a few either way)
        assert 0.4 <= server_cpu_seconds(47811) < 0.9
        assert server_cpu_seconds(47899) == 0.0  # no server on that port
    finally:
        for proc in started:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# a "server" whose two workers share one listening socket: the first accepts 3 connections, the second 1
SHARED = """
import os, socket, sys, time
listener = socket.create_server(("127.0.0.1", int(sys.argv[2])))
for name, count in (("first", 3), ("second", 1)):
    if os.fork() == 0:
        held = [listener.accept()[0] for _ in range(count)]
        open(os.path.join(sys.argv[1], name), "w").close()
        time.sleep(60)
time.sleep(60)
"""


def test_the_connection_split_counts_each_workers_established_connections(tmp_path):
    from benchmarks.peer import connection_split, split_text, worker_connections

    port = 47813
    server = subprocess.Popen([sys.executable, "-c", SHARED, str(tmp_path), str(port)], start_new_session=True)
    clients = []
    try:
        deadline = time.monotonic() + 30
        while not clients:
            try:
                clients.append(socket.create_connection(("127.0.0.1", port)))
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.05)
        clients += [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        while not ((tmp_path / "first").exists() and (tmp_path / "second").exists()):
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.05)
        assert worker_connections(port) == [3, 1]  # the listening socket's holder has none established
        with connection_split(port, after_s=0.1) as split:
            time.sleep(0.5)
        assert split_text([split, []]) == "3+1, ?"
        assert worker_connections(47898) == []  # no server on that port
    finally:
        for sock in clients:
            sock.close()
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
