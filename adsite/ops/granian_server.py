"""The web role's server (``python -m adsite.ops.granian_server``, scripts/serve.sh): granian's own command line,
with two changes that make a worker's restart invisible to visitors.

1. **The listening sockets are held by granian's main process.** On Linux granian 2.8 has each worker open its
   own listening socket (``SO_REUSEPORT``): the kernel spreads new connections over those sockets as they
   arrive, so the connections waiting in a worker's queue when that worker stops (a reload, a crash, a SIGKILL)
   are reset (unless the host sets ``net.ipv4.tcp_migrate_req=1``), and while no worker listens, connections
   are refused. Here the main process opens one ``SO_REUSEPORT`` socket per worker (``--workers``) and keeps
   them all: worker *i* and every replacement of it inherit socket *i*, so a socket never closes while the
   main process lives. New connections go to the sockets of the workers that are ready (warm, see 2), by the
   kernel's hash of each connection while all or none are (``_Steering``: a classic BPF program attached to the
   group while only some are): a worker that dies is passed over as soon as the main process sees it gone
   (before it starts the replacement), what was already queued on its socket waits for the replacement, and
   nothing is refused or reset.
   Why a socket per worker rather than one shared by all (this module's design until 2026-12-05): on a shared
   socket every worker's event loop is woken by a new connection and the first to run takes all that are
   queued, so a client that opens its connections together (a pool; the benchmarks' wrk) had all of them on
   one worker in 13 of 30 tries (8 connections, 2 workers; ``python -m benchmarks.listen_socket``), leaving
   the other worker idle and half the server's capacity unused for that client. Granian's workers accept a
   connection whatever their load, so the split, once made, holds for the connection's life.
2. **A graceful reload waits for the replacement to be ready.** ``SIGHUP`` to the main process (``supervisorctl
   signal HUP web``) replaces the workers one at a time: granian starts the new worker, waits
   ``--respawn-interval`` and stops the old one (which stops taking connections and finishes the requests
   it holds). A new worker loads Django and warms its models before it takes traffic (``adsite/rsgi.py``),
   which can take longer than that interval; here the old worker is stopped only once its replacement has
   said it is ready (a file named by its pid in ``ADSITE_WEB_READY_DIR``, which this module sets; at most
   ``READY_TIMEOUT_S``), so the site never runs on fewer ready workers than it has.

Everything else (options, signals, respawning a worker that died) is granian's, unchanged. Both changes
replace private methods of the pinned granian version (pyproject.toml); ``patch_granian`` refuses to run on a
version whose methods it does not know, rather than serving without them. A Unix socket (``--uds``), and
systems other than Linux, keep granian's own handling there: one socket shared by the workers.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adsite.ops.connection_balance import BALANCE_DIR_ENV, WORKERS_ENV

READY_DIR_ENV = "ADSITE_WEB_READY_DIR"
READY_TIMEOUT_S = 180.0  # a new worker on a busy host: Django, torch and the models load before it is ready
PATCHED_FOR = ("2.8.",)


def worker_ready_mark() -> None:
    """Called by a web worker once it is warm (``adsite.rsgi``): its replacement of an old worker may proceed."""
    directory = os.environ.get(READY_DIR_ENV)
    if not directory:
        return
    try:
        Path(directory, str(os.getpid())).touch()
    except OSError:  # the main process waits out its time-out instead
        pass


# Linux socket options and classic BPF (linux/filter.h, asm-generic/socket.h)
SO_ATTACH_REUSEPORT_CBPF = 51
SO_DETACH_REUSEPORT_BPF = 68
_LD_RANDOM = (0x20, -0x1000 + 56)  # BPF_LD|BPF_W|BPF_ABS of SKF_AD_OFF + SKF_AD_RANDOM: A = a random number
_MOD_K, _JEQ_K, _RET_K = 0x94, 0x15, 0x06  # BPF_ALU|BPF_MOD|BPF_K, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K


def steering_program(targets: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """A classic BPF program for a ``SO_REUSEPORT`` group: the index of the socket a new connection goes to,
    one of ``targets`` (the group's order: the order the sockets started listening) at random."""
    code: list[tuple[int, int, int, int]] = [(_LD_RANDOM[0], 0, 0, _LD_RANDOM[1] & 0xFFFFFFFF),
                                             (_MOD_K, 0, 0, len(targets))]
    for position, target in enumerate(targets):
        code += [(_JEQ_K, 0, 1, position), (_RET_K, 0, 0, target)]
    return [*code, (_RET_K, 0, 0, targets[0])]


class _Steering:
    """Which of the main process's listening sockets new connections go to: those of the workers marked ready
    (``mark``); the kernel's hash over all of them while all or none are ready."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size  # one socket of the group (a program attached to it serves the group)
        self.ready: set[int] = set()
        self._lock = threading.Lock()

    def mark(self, idx: int, ready: bool) -> None:
        """Worker ``idx`` is warm (``ready``) or gone. A kernel that refuses the program leaves the kernel's
        hash over all the sockets (logged): connections may then wait for a worker being replaced."""
        try:
            self._apply(idx, ready)
        except OSError as exc:
            from granian.server.common import logger

            logger.warning(f"cannot steer new connections to the ready workers: {exc}")

    def _apply(self, idx: int, ready: bool) -> None:
        with self._lock:
            (self.ready.add if ready else self.ready.discard)(idx)
            targets = sorted(self.ready)
            with socket.socket(fileno=os.dup(self.fd)) as sock:
                if 0 < len(targets) < self.size:
                    code = steering_program(targets)
                    insns = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in code))
                    fprog = struct.pack("HL", len(code), ctypes.addressof(insns))  # struct sock_fprog
                    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
                else:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
                    except OSError:  # none attached
                        pass

    def ready_when_warm(self, worker: Any, idx: int, directory: Path) -> None:
        """From a thread: mark worker ``idx`` ready once its process is warm (or after ``READY_TIMEOUT_S``,
        an app that never says so); not if it died first (its replacement's thread will)."""
        def wait() -> None:
            _wait_ready(worker, directory, READY_TIMEOUT_S)
            if worker.is_alive():
                self.mark(idx, True)

        threading.Thread(target=wait, name=f"adsite-ready-{idx + 1}", daemon=True).start()


def _wait_ready(worker: Any, directory: Path, timeout: float) -> bool:
    """Until the new worker marked itself ready, died, or ``timeout`` passed; True if ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = worker._id()
        if pid is not None and (directory / str(pid)).exists():
            return True
        if pid is not None and not worker.is_alive():
            return False
        time.sleep(0.05)
    return False


def patch_granian() -> None:
    """Hold the workers' listening sockets in the main process, steer new connections to the ready workers, and
    make graceful respawns wait for readiness."""
    import granian
    from granian.net import SocketSpec
    from granian.server import common
    from granian.server.mp import MPServer as processes

    version = str(getattr(granian, "__version__", ""))
    server = common.AbstractServer
    if not version.startswith(PATCHED_FOR) or not all(
        hasattr(server, name) for name in ("_init_shared_socket", "_respawn_workers", "_spawn_worker")
    ) or "_spawn_worker" not in vars(processes):
        raise RuntimeError(f"adsite.ops.granian_server knows granian {PATCHED_FOR}, not {version}")
    original_init = server._init_shared_socket
    original_spawn = processes._spawn_worker
    logger = common.logger
    ready_dir = Path(os.environ.setdefault(READY_DIR_ENV, tempfile.mkdtemp(prefix="adsite-web-ready-")))
    ready_dir.mkdir(parents=True, exist_ok=True)
    # where the workers share their counts of the clients' connections (adsite/ops/connection_balance.py)
    Path(os.environ.setdefault(BALANCE_DIR_ENV, tempfile.mkdtemp(prefix="adsite-web-balance-"))).mkdir(
        parents=True, exist_ok=True)

    def _init_shared_socket(self: Any) -> None:
        os.environ[WORKERS_ENV] = str(self.workers)  # the workers' share of the connections (their environment)
        if self.bind_uds or not sys.platform.startswith("linux"):  # elsewhere granian shares one socket itself
            original_init(self)
            return
        spec = SocketSpec(self.bind_addr, self.bind_port, self.backlog)
        self._adsite_sockets = [spec.build() for _ in range(self.workers)]  # one SO_REUSEPORT group, kept
        for holder in self._adsite_sockets:
            # listening from here, one after another: a socket's place in the group is the order it started
            # listening (what the steering program's indices name), and a connection that comes before its
            # worker is up waits in the queue instead of being refused (a worker's own listen() then only
            # sets the backlog again)
            with socket.socket(fileno=os.dup(holder.get_fd())) as sock:
                sock.listen(self.backlog)
        self._adsite_steering = _Steering(self._adsite_sockets[0].get_fd(), len(self._adsite_sockets))
        self._shd = self._adsite_sockets[0]
        self._sfd = self._shd.get_fd()
        self._ssp = None  # the workers get a socket itself (inherited), not a spec to bind their own

    def _spawn_worker(self: Any, idx: int, target: Any, callback_loader: Any) -> Any:
        sockets = getattr(self, "_adsite_sockets", None)
        if sockets:
            self._shd = sockets[idx]  # worker idx, and each replacement of it, serves socket idx
        wrk = original_spawn(self, idx, target, callback_loader)
        if sockets:
            self._adsite_steering.ready_when_warm(wrk, idx, ready_dir)
        return wrk

    def _respawn_workers(self: Any, workers: Any, spawn_target: Any, target_loader: Any, delay: float = 0) -> None:
        for idx in workers:
            self.respawned_wrks[idx] = time.monotonic()
            logger.info(f"Respawning worker-{idx + 1}")
            old_wrk = self.wrks.pop(idx)
            steering = getattr(self, "_adsite_steering", None)
            if steering is not None and not old_wrk.is_alive():  # died: pass its socket over until it is back
                steering.mark(idx, False)
            wrk = self._spawn_worker(idx=idx, target=spawn_target, callback_loader=target_loader)
            wrk.start()
            self.wrks.insert(idx, wrk)
            if delay and old_wrk.is_alive():
                # a graceful respawn: the old worker serves until the new one is warm
                if not _wait_ready(wrk, ready_dir, READY_TIMEOUT_S):
                    logger.warning(f"worker-{idx + 1} not ready after {READY_TIMEOUT_S:.0f} s; stopping the old one")
                time.sleep(delay)
            logger.info(f"Stopping old worker-{idx + 1}")
            old_wrk.terminate()
            old_wrk.join(self.workers_kill_timeout)
            if self.workers_kill_timeout and old_wrk.is_alive():
                time.sleep(0.001)
                if old_wrk.is_alive():
                    logger.warning(f"Killing old worker-{idx + 1} after it refused to gracefully stop")
                    old_wrk.kill()
                    old_wrk.join()
            try:
                (ready_dir / str(old_wrk._id())).unlink()
            except OSError:
                pass
            logger.info(f"Stopped old worker-{idx + 1}")
        self._metrics.incr_spawn(len(workers))

    server._init_shared_socket = _init_shared_socket  # type: ignore[method-assign]
    server._respawn_workers = _respawn_workers  # type: ignore[method-assign]
    processes._spawn_worker = _spawn_worker  # type: ignore[method-assign]


def main() -> None:
    patch_granian()
    from granian.cli import entrypoint

    entrypoint()


if __name__ == "__main__":
    main()
