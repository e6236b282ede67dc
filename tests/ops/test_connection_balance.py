"""adsite/ops/connection_balance.py: a web process holding more than its share of the clients' keep-alive
connections closes the surplus after their answers, so that they reconnect (and the kernel places them anew).

The processes here are ``ConnectionBalance`` objects sharing one directory, as a server's web processes do,
with a clock the test moves; ``tests/ops/test_granian_server.py`` runs the same through real granian workers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from adsite.ops.connection_balance import PERIOD_S, ConnectionBalance
from adsite.rsgi import BufferedWSGI
from tests.ops.test_rsgi import Echo, Proto, Scope


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _processes(tmp_path: Path, clock: Clock, n: int = 2) -> list[ConnectionBalance]:
    return [ConnectionBalance(tmp_path, n, name=f"p{i}", clock=clock) for i in range(n)]


def _requests(balance: ConnectionBalance, clients: list[str]) -> list[str]:
    """One request from each client; the clients whose answers close their connections."""
    return [client for client in clients if balance.closes(client)]


def _round(processes: list[ConnectionBalance], split: list[list[str]], clock: Clock) -> list[list[str]]:
    """Each process's connections send a request, a period passes (counts written and read), and they send
    another: the connections each process closed in that second round."""
    for balance, clients in zip(processes, split, strict=True):
        _requests(balance, clients)
    clock.now += PERIOD_S
    return [_requests(balance, clients) for balance, clients in zip(processes, split, strict=True)]


def _clients(n: int, first: int = 0) -> list[str]:
    return [f"10.0.0.1:{40000 + first + i}" for i in range(first, first + n)]


def test_seven_connections_against_one_the_busy_process_closes_the_surplus(tmp_path: Path) -> None:
    clock = Clock()
    busy, idle = _processes(tmp_path, clock)
    closed = _round([busy, idle], [_clients(7), _clients(1, 100)], clock)
    # 3 over its share of the 8 (4): half of them at a time (the other's count may be a period old)
    assert [len(c) for c in closed] == [2, 0]
    # the two reconnect to the idle process (the kernel's choice): 5+3, within the tolerance; nothing more
    left = [c for c in _clients(7) if c not in closed[0]]
    moved = _clients(1, 100) + _clients(2, 300)
    assert _round([busy, idle], [left, moved], clock) == [[], []]
    assert (busy.closed, idle.closed) == (2, 0)


def test_the_surplus_that_reconnects_to_the_same_process_is_closed_again(tmp_path: Path) -> None:
    clock = Clock()
    busy, idle = _processes(tmp_path, clock)
    closed = _round([busy, idle], [_clients(7), _clients(1, 100)], clock)
    back = [c for c in _clients(7) if c not in closed[0]] + _clients(2, 300)  # both came back: 7+1 again
    clock.now += 1.5  # the closed ones' entries have aged out
    assert [len(c) for c in _round([busy, idle], [back, _clients(1, 100)], clock)] == [2, 0]


def test_a_split_within_a_quarter_of_the_share_is_left_alone(tmp_path: Path) -> None:
    """5+3: one over a share of 4 is within its quarter; closing there would only churn connections."""
    clock = Clock()
    closed = _round(_processes(tmp_path, clock), [_clients(5), _clients(3, 100)], clock)
    assert closed == [[], []]


def test_an_idle_process_counts_as_holding_no_connections(tmp_path: Path) -> None:
    """All 8 on one process, the other answering nothing (its count unwritten, or too old): half go."""
    clock = Clock()
    busy, idle = _processes(tmp_path, clock)
    _requests(idle, _clients(2, 200))  # it once had connections, more than a second ago
    clock.now += 5
    closed = _round([busy, idle], [_clients(8), []], clock)
    assert [len(c) for c in closed] == [2, 0]  # half of the 4 over its share


def test_many_clients_spread_by_chance_close_nothing(tmp_path: Path) -> None:
    """400 connections split 215+185 (1.5 standard deviations of a fair coin's spread): within the tolerance."""
    clock = Clock()
    closed = _round(_processes(tmp_path, clock), [_clients(215), _clients(185, 1000)], clock)
    assert closed == [[], []]


def test_only_server_workers_with_several_processes_balance(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.delenv("ADSITE_WEB_BALANCE_DIR", raising=False)
    assert ConnectionBalance.from_environ() is None
    monkeypatch.setenv("ADSITE_WEB_BALANCE_DIR", str(tmp_path))
    monkeypatch.setenv("ADSITE_WEB_WORKERS", "1")
    assert ConnectionBalance.from_environ() is None
    monkeypatch.setenv("ADSITE_WEB_WORKERS", "2")
    assert ConnectionBalance.from_environ() is not None


def test_the_server_adapter_closes_the_surplus_connections_after_a_whole_answer(tmp_path: Path) -> None:
    """``BufferedWSGI``: the closing answer is the app's own, with ``Connection: close`` added (HTTP/1.1 only)."""
    clock = Clock()
    mine, other = _processes(tmp_path, clock)
    _requests(other, _clients(1, 100))
    app = BufferedWSGI(Echo(), max_body_bytes=1000)
    app.balance = mine
    from adsite.ops.metrics import HTTP_CONNECTIONS_BALANCED

    app._balanced_counter = HTTP_CONNECTIONS_BALANCED

    def answer(client: str, version: str = "1.1") -> tuple[int, list[tuple[str, str]], bytes]:
        scope = Scope("GET", "/healthz", "", [("host", "example.com")])
        scope.client, scope.http_version = client, version  # type: ignore[misc]
        proto = Proto([])
        asyncio.run(app(scope, proto))
        assert proto.response is not None
        return proto.response

    for client in _clients(7):
        assert ("connection", "close") not in answer(client)[1]
    clock.now += PERIOD_S
    h2 = answer(_clients(1)[0], version="2")  # counted, never marked: HTTP/2 has no such header
    assert ("connection", "close") not in h2[1]
    answers = [answer(client) for client in _clients(7)]
    closing = [a for a in answers if ("connection", "close") in a[1]]
    assert len(closing) == 2
    assert all(status == 201 and body.startswith(b"{") for status, _, body in closing)
