"""A stand-in RSGI application for tests/ops/test_granian_server.py and benchmarks/listen_socket.py: slow to
start (``SLOW_APP_START_S``, as a web worker loading Django and its models is) and, per request, 20 ms asleep
or ``SLOW_APP_CPU_MS`` of computing, holding the worker's one thread as Django does; each answer names the
worker's pid. ``SLOW_APP_BALANCE=1``: the workers even out their keep-alive connections as adsite's do
(``adsite.ops.connection_balance``, applied to each answer as ``adsite.rsgi`` applies it)."""

from __future__ import annotations

import os
import time
from typing import Any


class SlowStartingApp:
    balance: Any = None

    def __rsgi_init__(self, loop: Any) -> None:
        time.sleep(float(os.environ.get("SLOW_APP_START_S", "2")))
        if os.environ.get("SLOW_APP_BALANCE") == "1":
            from adsite.ops.connection_balance import ConnectionBalance

            self.balance = ConnectionBalance.from_environ()
        from adsite.ops.granian_server import worker_ready_mark

        worker_ready_mark()

    def __rsgi_del__(self, loop: Any) -> None:
        pass

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        await proto()
        cpu_s = float(os.environ.get("SLOW_APP_CPU_MS", "0")) / 1000
        if cpu_s:
            until = time.process_time() + cpu_s
            while time.process_time() < until:
                pass
        else:
            time.sleep(0.02)
        headers = [("content-type", "text/plain")]
        if self.balance is not None and scope.http_version == "1.1" and self.balance.closes(scope.client):
            headers.append(("connection", "close"))
        proto.response_bytes(200, headers, str(os.getpid()).encode())


app = SlowStartingApp()
