"""A stand-in RSGI application for tests/ops/test_granian_server.py and benchmarks/listen_socket.py: slow to
start (``SLOW_APP_START_S``, as a web worker loading Django and its models is) and, per request, 20 ms asleep
or ``SLOW_APP_CPU_MS`` of computing, holding the worker's one thread as Django does; each answer names the
worker's pid."""

from __future__ import annotations

import os
import time
from typing import Any


class SlowStartingApp:
    def __rsgi_init__(self, loop: Any) -> None:
        time.sleep(float(os.environ.get("SLOW_APP_START_S", "2")))
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
        proto.response_bytes(200, [("content-type", "text/plain")], str(os.getpid()).encode())


app = SlowStartingApp()
