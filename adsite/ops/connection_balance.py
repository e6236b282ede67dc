"""Evening out the clients' keep-alive connections over the web processes (used by ``adsite.rsgi``).

A web process answers only the connections it accepted, for as long as they stay open, and the kernel places
each new connection on one process's listening socket by a hash (``adsite.ops.granian_server``). A client that
opens its connections together (a pool, a load generator) gets 8 of them split 6+2 or 7+1 about one time in
three (``python -m benchmarks.listen_socket``); the process with more then queues them while the other has
little to do (the decisions' clients' p99 15.7-18.5 ms in rounds split 7+1 against 12.1-13.5 ms at 4+4:
docs/benchmarks.md).

Each process counts the connections that sent it a request in the last ``WINDOW_S`` (a client's address and
port) and, every ``PERIOD_S``, writes that count to a file of its own in the directory the server's main
process names (``ADSITE_WEB_BALANCE_DIR``, for ``ADSITE_WEB_WORKERS`` processes) and reads the others'. A
process holding more than its share (the total over the processes, rounded up) by more than a quarter of it
answers the next requests of half that many connections (rounded up: the others' counts may be a period
old) with ``Connection: close``; a process counts a new connection at once. The answer itself is whole;
the client opens a new connection for its next request (HTTP/1.1), which the kernel places anew: on another
process one time in two, with two. The quarter's tolerance keeps the chance spread of many clients (about the
square root of their number) from closing connections all the time. Only HTTP/1.1 answers are marked (HTTP/2
carries all of a client's requests on one connection, and HTTP/1.0 closes after each answer by default).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["BALANCE_DIR_ENV", "WORKERS_ENV", "ConnectionBalance"]

BALANCE_DIR_ENV = "ADSITE_WEB_BALANCE_DIR"
WORKERS_ENV = "ADSITE_WEB_WORKERS"
WINDOW_S = 1.0  # a connection counts as a process's while it sent a request this recently
PERIOD_S = 0.25  # how often a process writes its count and reads the others'


class ConnectionBalance:
    """One web process's share of the connections (module docstring). ``clock``: wall-clock seconds, shared by
    the processes through their files."""

    def __init__(self, directory: Path, processes: int, *, name: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._dir = directory
        self._processes = processes
        self._own = directory / (name or str(os.getpid()))
        self._clock = clock
        self._seen: dict[str, float] = {}  # client "address:port" -> its latest request
        self._next = 0.0
        self._excess = 0  # connections still to close this period
        self._fd: int | None = None  # its own file, written in place (fixed width: a reader never sees it empty)
        self.closed = 0  # connections this process asked its clients to close, in all

    @classmethod
    def from_environ(cls) -> ConnectionBalance | None:
        """The balance of a web process started by ``adsite.ops.granian_server`` with two or more processes;
        None otherwise (one process, or another server)."""
        directory, processes = os.environ.get(BALANCE_DIR_ENV), os.environ.get(WORKERS_ENV, "")
        if not directory or not processes.isdigit() or int(processes) < 2:
            return None
        return cls(Path(directory), int(processes))

    def closes(self, client: str) -> bool:
        """Whether the answer to this request of ``client``'s connection should close it (call once per HTTP/1.1
        answer)."""
        now = self._clock()
        new = client not in self._seen
        self._seen[client] = now
        if now >= self._next:
            self._next = now + PERIOD_S
            self._excess = self._recount(now)
        elif new:  # a new connection is counted at once: the others never read a count short of it
            self._write(len(self._seen), now)
        if self._excess <= 0:
            return False
        self._excess -= 1
        del self._seen[client]  # its next request comes on a new connection, wherever the kernel puts it
        self.closed += 1
        return True

    def _recount(self, now: float) -> int:
        """This process's count written, the others' read: how many of its connections are over its share."""
        oldest = now - WINDOW_S
        self._seen = {client: at for client, at in self._seen.items() if at >= oldest}
        mine = len(self._seen)
        others = 0
        try:
            self._write(mine, now)
            with os.scandir(self._dir) as entries:
                for entry in entries:
                    if entry.name != self._own.name:
                        others += _count_read(entry.path, oldest)
        except OSError:  # the directory gone (the server stopping): nothing is closed
            return 0
        share = math.ceil((mine + others) / self._processes)
        excess = mine - share
        # half of the surplus at a time (rounded up): the others' counts may be a period old
        return math.ceil(excess / 2) if excess > share // 4 else 0

    def _write(self, count: int, now: float) -> None:
        if self._fd is None:
            self._fd = os.open(self._own, os.O_WRONLY | os.O_CREAT, 0o644)
        os.pwrite(self._fd, f"{count:>10} {now:>20.6f}".encode(), 0)

    def forget(self) -> None:
        """This process's file removed (it stops serving)."""
        try:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._own.unlink()
        except OSError:
            pass


def _count_read(path: str, oldest: float) -> int:
    """Another process's count, 0 when it wrote none since ``oldest`` (idle, or gone)."""
    try:
        with open(path) as handle:
            count, written = handle.read().split()
        return int(count) if float(written) >= oldest else 0
    except (OSError, ValueError):
        return 0
