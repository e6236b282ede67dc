"""The benchmarks' load generator: wrk when installed, Python client processes otherwise, one result type."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmarks.load import result_from_wrk, run_load

LUA_UNIQUE = """
function body(n)
  return string.format('{"id": "%d-%d-%d"}', run_id, thread_id, n)
end
"""


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the generators expect
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    bodies: list[bytes] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            self.bodies.append(body)
        status = 200 if self.headers.get("X-Bench") == "yes" else 400
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        with self.lock:
            self.bodies.append(self.path.encode())
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    _Recorder.bodies = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_wrk_sends_headers_and_a_fresh_body_per_request(server):
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    result = run_load(
        port=server,
        path="/x",
        method="POST",
        headers={"X-Bench": "yes"},
        lua_body=LUA_UNIQUE,
        clients=2,
        seconds=1,
        warmup=1,
    )
    assert result.generator == "wrk"
    assert result.requests > 0 and result.errors == 0
    assert result.statuses == {200: result.requests}  # the header reached the server on every request
    assert len(set(_Recorder.bodies)) == len(_Recorder.bodies)  # warm-up and measured run included
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms


def test_python_clients_when_asked_or_without_wrk(server, monkeypatch):
    monkeypatch.setenv("BENCH_LOAD_GENERATOR", "python")
    result = run_load(
        port=server,
        path="/x",
        method="POST",
        headers={"X-Bench": "no"},
        body_factory=lambda client, n: f"{client}-{n}".encode(),
        lua_body=LUA_UNIQUE,
        clients=2,
        seconds=0.5,
        warmup=0.2,
    )
    assert result.generator == "python"
    assert result.requests > 0
    assert set(result.statuses) == {400}  # 4xx counted by status, not as server errors
    assert result.errors == 0


def test_wrk_summary_line_is_read_into_a_load_result():
    parsed = {
        "requests": 200,
        "duration_us": 2_000_000,
        "p50_us": 1500.0,
        "p95_us": 3000.0,
        "p99_us": 4200.0,
        "max_us": 9000.0,
        "mean_us": 1700.0,
        "statuses": {"200": 195, "503": 5},
        "errors": {"connect": 0, "read": 1, "write": 0, "status": 5, "timeout": 0},
    }
    result = result_from_wrk(parsed)
    assert (result.rps, result.p50_ms, result.p99_ms) == (100.0, 1.5, 4.2)
    assert result.statuses == {200: 195, 503: 5}
    assert result.errors == 6  # 5xx responses and transport errors


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_requests_walk_the_given_paths(server, monkeypatch, generator):
    if generator == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    if generator == "python":
        monkeypatch.setenv("BENCH_LOAD_GENERATOR", "python")
    paths = [f"/users/{i}/interests" for i in range(1, 31)]
    result = run_load(port=server, path="/unused", paths=paths, clients=2, seconds=1, warmup=0)
    assert result.generator == generator and result.requests > 60 and result.errors == 0
    seen = {body.decode() for body in _Recorder.bodies}
    assert seen == set(paths)  # every user asked for, and nothing else


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_a_rate_paces_the_clients_far_below_what_they_would_send_unpaced(server, monkeypatch, generator):
    """A stepped load's step: 8 clients paced to 10 requests/s in all for 2 s send about 20 requests (Poisson
    arrivals; 60 would be 6 standard deviations above), where unpaced they send thousands."""
    if generator == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    monkeypatch.setenv("BENCH_LOAD_GENERATOR", generator)
    result = run_load(port=server, path="/x", clients=8, seconds=2, warmup=0, rate=10.0)
    assert result.generator == generator
    assert 0 < result.requests <= 60
    assert result.statuses == {200: result.requests}


class _CookieRecorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    seen: list[tuple[str, set[str]]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        events = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))["events"]
        with self.lock:
            self.seen.append((self.headers.get("Cookie", ""), {event["user_id"] for event in events}))
        self.send_response(202)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_the_collect_benchmark_sends_each_batch_with_its_visitors_identity_cookie(monkeypatch, generator):
    """/collect quarantines a browser's events that are not the identity cookie's visitor's: the benchmark's
    batches are each one visitor's and carry that visitor's cookie, so its figures are of stored events."""
    from benchmarks.run import collect_body, collect_cookie, collect_lua

    if generator == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    monkeypatch.setenv("BENCH_LOAD_GENERATOR", generator)
    _CookieRecorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _CookieRecorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        run_load(port=httpd.server_address[1], path="/collect", method="POST", headers={"Content-Type": "text/plain"},
                 body_factory=collect_body(5), header_factory=collect_cookie, lua_body=collect_lua(5), clients=2,
                 seconds=1, warmup=0)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert _CookieRecorder.seen
    assert all(len(users) == 1 and cookie == f"adsite_uid={next(iter(users))}" for cookie, users in _CookieRecorder.seen)
