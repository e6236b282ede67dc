"""benchmarks/ports.py: the ports servers of the benchmarks and tests are started on."""

from __future__ import annotations

import socket

from benchmarks.ports import _ephemeral_low, free_port


def test_free_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    low = _ephemeral_low()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50  # never the same port twice in a process
    assert all(1024 <= port < low for port in ports)  # no outgoing connection takes its local port there
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
