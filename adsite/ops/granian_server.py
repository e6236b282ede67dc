"""The web role's server (``python -m adsite.ops.granian_server``, scripts/serve.sh): granian's own command line,
with two changes that make a worker's restart invisible to visitors.

1. **One listening socket, held by granian's main process.** On Linux granian 2.8 gives each worker its own
   listening socket (``SO_REUSEPORT``): the kernel spreads new connections over those sockets as they arrive,
   so the connections waiting in a worker's queue when that worker stops (a reload, a crash, a SIGKILL) are
   reset (unless the host sets ``net.ipv4.tcp_migrate_req=1``), and while no worker listens, connections are
   refused. Here the main process opens the socket once and every worker inherits it, as granian does on the
   other platforms: a worker that stops leaves the queue to the others, and nothing is refused while the
   main process lives (a new connection waits in the queue until a worker takes it).
2. **A graceful reload waits for the replacement to be ready.** ``SIGHUP`` to the main process (``supervisorctl
   signal HUP web``) replaces the workers one at a time: granian starts the new worker, waits
   ``--respawn-interval`` and stops the old one (which stops taking connections and finishes the requests
   it holds). A new worker loads Django and warms its models before it takes traffic (``adsite/rsgi.py``),
   which can take longer than that interval; here the old worker is stopped only once its replacement has
   said it is ready (a file named by its pid in ``ADSITE_WEB_READY_DIR``, which this module sets; at most
   ``READY_TIMEOUT_S``), so the site never runs on fewer ready workers than it has.

Everything else (options, signals, respawning a worker that died) is granian's, unchanged. Both changes
replace private methods of the pinned granian version (pyproject.toml); ``patch_granian`` refuses to run on a
version whose methods it does not know, rather than serving without them.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

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
    """Replace granian's per-worker sockets with one shared socket and make graceful respawns wait for readiness."""
    import granian
    from granian.net import SocketSpec
    from granian.server import common

    version = str(getattr(granian, "__version__", ""))
    server = common.AbstractServer
    if not version.startswith(PATCHED_FOR) or not all(
        hasattr(server, name) for name in ("_init_shared_socket", "_respawn_workers", "_spawn_worker")
    ):
        raise RuntimeError(f"adsite.ops.granian_server knows granian {PATCHED_FOR}, not {version}")
    original_init = server._init_shared_socket
    logger = common.logger
    ready_dir = Path(os.environ.setdefault(READY_DIR_ENV, tempfile.mkdtemp(prefix="adsite-web-ready-")))
    ready_dir.mkdir(parents=True, exist_ok=True)

    def _init_shared_socket(self: Any) -> None:
        if self.bind_uds:
            original_init(self)
            return
        self._ssp = SocketSpec(self.bind_addr, self.bind_port, self.backlog)
        self._shd = self._ssp.build()
        self._sfd = self._shd.get_fd()
        self._ssp = None  # the workers get the socket itself (inherited), not a spec to bind their own

    def _respawn_workers(self: Any, workers: Any, spawn_target: Any, target_loader: Any, delay: float = 0) -> None:
        for idx in workers:
            self.respawned_wrks[idx] = time.monotonic()
            logger.info(f"Respawning worker-{idx + 1}")
            old_wrk = self.wrks.pop(idx)
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


def main() -> None:
    patch_granian()
    from granian.cli import entrypoint

    entrypoint()


if __name__ == "__main__":
    main()
