"""The training engine: ``local`` (this process) or ``dask`` (a Dask cluster), chosen by one switch.

``training_engine(name, scheduler=...)`` is a context manager that yields a :class:`TrainingEngine`:

- ``local``: nothing is started; the training set is built in this process, LightGBM and PyTorch
  train here (what training always did).
- ``dask`` with a scheduler address (``tcp://HOST:8786``): a client of that cluster (one started by
  ``dask scheduler`` / ``dask worker``, dask-kubernetes or dask-gateway; docs/scaling.md).
- ``dask`` without one: a ``LocalCluster`` of worker processes sized to this machine (one per core,
  one thread each), closed when the block ends.

The engine carries what the distributed parts need: the client, a directory for the shards (under
``INFERENCE["TRAINING_SHARD_DIR"]``, which must be shared storage for a cluster on other machines)
and the facts of the run (``facts()``: the ``--json`` report and what the registry keeps).

:class:`StageWatch` watches a stage whose tasks must all live to the end (LightGBM's ring, the DDP
ranks) from the driver: a worker of the stage that leaves the cluster ends it at once with
:class:`WorkerLost` (its tasks cancelled), and the progress the tasks report
(``progress_report`` inside a task, a Dask worker event) reaches the driver's progress callback from the
driver's own thread.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ENGINES",
    "StageWatch",
    "TrainingEngine",
    "WorkerLost",
    "progress_report",
    "training_engine",
    "worker_addresses",
]

ENGINES = ("local", "dask")
WATCH_INTERVAL_S = 1.0  # how often the driver looks at a watched stage's workers and progress

logger = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerLost(RuntimeError):
    """A worker that a watched stage ran on left the cluster before the stage ended."""


def progress_report(topic: str | None, **fields: Any) -> None:
    """Inside a Dask task: send ``fields`` (msgpack-able) to the driver watching ``topic``. Outside a
    worker, or without a topic, nothing happens: progress is never a reason to fail a task."""
    if not topic:
        return
    try:
        from distributed import get_worker

        get_worker().log_event(topic, fields)
    except Exception:  # noqa: S110 - not in a worker, or the event could not be sent
        pass


class StageWatch:
    """Watches one distributed stage from the driver (see the module docstring).

    ``ring``: the workers the stage needs to the end (default: every worker when the watch starts).
    ``on_progress`` gets each message a task sent with ``progress_report(watch.topic, ...)``, called in
    the thread that runs ``run``/``wait`` (never in the client's event-loop thread).
    ``cancel_prefixes``: key prefixes of tasks the stage started without handing over their futures
    (``lightgbm.dask``'s ``_train_part``), cancelled with the stage's own when a worker is lost.
    """

    def __init__(
        self,
        client: Any,
        *,
        stage: str,
        ring: Collection[str] | None = None,
        on_progress: Callable[[Mapping[str, Any]], None] | None = None,
        cancel_prefixes: Sequence[str] = (),
        interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self.client = client
        self.stage = stage
        self.ring = set(ring) if ring is not None else set(worker_addresses(client))
        self.on_progress = on_progress
        self.cancel_prefixes = tuple(cancel_prefixes)
        self.interval_s = interval_s
        self.topic = f"adsite-progress-{uuid.uuid4().hex[:12]}"
        self._messages: queue.SimpleQueue[Mapping[str, Any]] = queue.SimpleQueue()
        self._futures: list[Any] = []

    def __enter__(self) -> StageWatch:
        self.client.subscribe_topic(self.topic, lambda event: self._messages.put(event[1]))
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:  # noqa: S110 - the client is closing: nothing left to unsubscribe from
            pass

    def check(self) -> None:
        """Report the progress received so far; raise :class:`WorkerLost` if a ring worker is gone."""
        self._progress_drain()
        gone = self.ring - set(worker_addresses(self.client))
        if gone:
            self._stop(gone)

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` (a blocking call that drives the stage, e.g. a ``lightgbm.dask`` fit) in a thread
        of its own, while this thread watches; its result, or its error, or :class:`WorkerLost`."""
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = work()
            except BaseException as exc:  # handed to the watching thread
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"adsite-{self.stage}", daemon=True)
        thread.start()
        while True:
            thread.join(self.interval_s)
            if not thread.is_alive():
                break
            self.check()
        self._progress_drain()
        if "error" in box:
            raise box["error"]
        return box["result"]  # type: ignore[no-any-return]

    def wait(self, futures: Sequence[Any]) -> list[Any]:
        """The results of ``futures`` (the stage's tasks), watching meanwhile; the first task that fails
        cancels the others and its error is raised."""
        from distributed import wait

        self._futures = list(futures)
        pending = list(futures)
        while pending:
            try:
                finished, still = wait(pending, timeout=self.interval_s, return_when="FIRST_COMPLETED")
            except TimeoutError:  # none finished within the interval
                finished, still = set(), set(pending)
            pending = list(still)
            failed = sorted((f for f in finished if f.status != "finished"), key=lambda f: f.status != "error")
            if failed:
                self.client.cancel(self._futures)
                failed[0].result()  # raises the task's error
            if pending:
                self.check()
        self._progress_drain()
        return [future.result() for future in futures]

    def _progress_drain(self) -> None:
        while True:
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                return
            if self.on_progress is not None:
                self.on_progress(message)

    def _stop(self, gone: set[str]) -> None:
        from distributed import Future

        futures = list(self._futures)
        if self.cancel_prefixes:
            futures += [
                Future(key, self.client)
                for key in list(self.client.futures)
                if isinstance(key, str) and key.startswith(self.cancel_prefixes)
            ]
        if futures:
            self.client.cancel(futures, force=True, reason=f"a worker of {self.stage} left")
        survivors = sorted(self.ring - gone)
        # a survivor's task may still wait on the lost peer inside C code that no cancel reaches: it
        # ends with its own time-out (LightGBM's time_out, DDP's timeout) or when the cluster closes
        logger.warning("inference.training_worker_lost stage=%s lost=%s survivors=%s", self.stage, sorted(gone), survivors)
        raise WorkerLost(
            f"Dask worker {', '.join(sorted(gone))} left the cluster during {self.stage}; "
            "the stage cannot go on without it (its tasks were cancelled)"
        )


def worker_addresses(client: Any) -> list[str]:
    """The addresses of the cluster's workers, asked of the scheduler now. Not ``scheduler_info()``:
    it returns the client's cached identity, which the client's own periodic refresh overwrites with
    one that lists no workers, so a caller racing that refresh saw every worker gone."""
    return sorted(client.sync(client.scheduler.identity, n_workers=-1)["workers"])


@dataclass
class TrainingEngine:
    name: str
    client: Any = None  # a distributed.Client for "dask"
    directory: Path | None = None  # the shards of this run (dask)
    scheduler: str | None = None
    partitions: int = 0
    # the facts of each distributed stage, filled as the run goes (see facts())
    builders: list[Any] = field(default_factory=list)

    @property
    def workers(self) -> int:
        if self.client is None:
            return 1
        return len(worker_addresses(self.client))

    def samples_builder(self, progress: Callable[[float, str], None] | None = None) -> Any:
        """The ``SamplesBuilder`` of this engine (``samples_list`` when local)."""
        if self.client is None:
            from inference.models.training import samples_list

            return samples_list
        from inference.training.distributed import DaskSamplesBuilder

        assert self.directory is not None
        builder = DaskSamplesBuilder(self.client, self.directory, partitions=self.partitions, progress=progress)
        self.builders.append(builder)
        return builder

    def facts(self) -> dict[str, Any]:
        """``{"engine", "workers", "partitions"}``; each model adds its own part (``training`` facts)."""
        return {
            "engine": self.name,
            "workers": self.workers,
            "partitions": self.partitions if self.client is not None else 1,
            "scheduler": self.scheduler or ("LocalCluster" if self.client is not None else None),
        }


def _project_root() -> str:
    import inference

    return str(Path(inference.__file__).resolve().parent.parent)


@contextmanager
def training_engine(
    name: str = "local",
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    partitions: int | None = None,
    shard_dir: str | os.PathLike[str] | None = None,
) -> Iterator[TrainingEngine]:
    """See the module docstring. ``partitions`` defaults to 4 per worker."""
    if name not in ENGINES:
        raise ValueError(f"unknown training engine {name!r}: use one of {', '.join(ENGINES)}")
    if name == "local":
        if scheduler:
            raise ValueError("--scheduler needs --engine dask")
        yield TrainingEngine(name="local")
        return
    from distributed import Client, LocalCluster

    root = _project_root()
    # worker processes copy this process's import path when they start (and restart): this checkout
    # first, so that they import the same inference package as the driver
    sys.path.insert(0, root)
    cluster = None
    client = None
    directory = Path(tempfile.mkdtemp(prefix="adsite-shards-", dir=shard_dir or None))
    try:
        if scheduler:
            client = Client(scheduler, timeout="30s")
        else:
            cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            client = Client(cluster)
        client.wait_for_workers(1, timeout=120)
        engine = TrainingEngine(name="dask", client=client, directory=directory, scheduler=scheduler)
        engine.partitions = partitions or 4 * engine.workers
        yield engine
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(directory, ignore_errors=True)
        if root in sys.path:
            sys.path.remove(root)
