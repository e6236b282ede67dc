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
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ENGINES", "TrainingEngine", "training_engine"]

ENGINES = ("local", "dask")


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
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

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
