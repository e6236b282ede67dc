"""Free TCP ports on 127.0.0.1 for the servers the benchmarks and tests start (``free_port``)."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_given: set[int] = set()  # ports this process handed out: never the same one twice
_lock = threading.Lock()


def _ephemeral_low() -> int:
    """The lowest local port the kernel gives outgoing connections (``ip_local_port_range``)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing on 127.0.0.1 holds now, below the kernel's ephemeral range.

    A server is started on it a moment later. A port the kernel chose (binding port 0) comes from the range
    it also takes outgoing connections' local ports from, so a connection made in between (a database or
    Redis client of the same run) could hold it and the server then fails with "Address already in use":
    this happened once to a web worker in a benchmark run. Below that range, no outgoing connection takes it.
    """
    low = _ephemeral_low()
    floor = max(1024, low - 12_000)
    with _lock:
        for _ in range(500):
            port = random.randrange(floor, low)
            if port in _given:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:  # a server listens there, or a connection of it lingers
                    continue
            _given.add(port)
            return port
    raise RuntimeError(f"no free port found in {floor}-{low - 1}")
