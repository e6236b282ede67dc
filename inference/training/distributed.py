"""The training set as a distributed job: the point-in-time builder per partition of visitors on Dask.

``DaskSamplesBuilder(client, directory, partitions)`` is a ``SamplesBuilder``
(``inference.models.training``): called with the events of one stream and ``samples_build``'s
options, it returns the same samples the single-process builder makes (row for row, once both are
sorted by time and visitor), kept as Parquet shards that the distributed trainers read where they run.

How, and why it is exact:

1. **Population pass** (here, one sequential replay): ``training_points(users=(),
   population_log=...)`` replays every event for the population state and every visitor's sampling
   decisions only, and records the population read-out each prediction point sees. The population
   is a global aggregate, and which read-out a point reuses depends on every visitor's points (the
   builder refreshes it every ``population_refresh_events``), so it is taken from the whole stream
   once rather than recomputed from a part of it.
2. **Export**: each visitor's events go to partition ``crc32(visitor) % partitions``, written as a
   Parquet file per partition, with that partition's recorded read-outs and per-visitor options.
   (The job writes its own export rather than reading PostgreSQL partitions: the events are already
   in this process, read through tracking's selector, and time partitions do not split by visitor.)
3. **Partitions** (Dask tasks, retried by Dask when a worker is lost: they are pure): each replays
   only its visitors' events with ``samples_build(populations=...)``, the same feature code as the
   online store, and writes its samples as a Parquet shard sorted by (time, visitor).

Everything a visitor's points need besides the population (their state, positions, sampling offset,
labels) comes from their own events, so each partition yields exactly that visitor's points.
"""

from __future__ import annotations

import pickle
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from inference.events import EventRecord
from inference.features import PopulationFeatures
from inference.models.inputs import (
    CATEGORIES_PER_EVENT,
    PAIR_FEATURE_NAMES,
    SEQUENCE_LENGTH,
    Sample,
    samples_build,
)
from inference.training.dataset import PointKey, training_points

__all__ = [
    "DaskSamplesBuilder",
    "ShardedSamples",
    "events_read_parquet",
    "events_write_parquet",
    "samples_read_parquet",
    "samples_write_parquet",
    "visitor_partition",
]

Progress = Callable[[float, str], None]

# samples_build's options that name visitors: each partition gets only its own visitors' entries
_PER_VISITOR = ("start_index", "stop_index", "prediction_times")


def visitor_partition(user_id: str, partitions: int) -> int:
    """The partition of a visitor (stable across processes and runs)."""
    return zlib.crc32(user_id.encode("utf-8")) % partitions


# -- Parquet: events and samples --------------------------------------------------------------------

_EVENT_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("ts", pa.float64()),
        ("type", pa.string()),
        ("categories", pa.list_(pa.string())),
        ("item_id", pa.string()),
        ("session_id", pa.string()),
        ("engaged_ms", pa.int64()),
        ("device", pa.string()),
        ("campaign_id", pa.string()),
    ]
)


def events_write_parquet(events: Sequence[EventRecord], path: Path) -> None:
    """Write event records (in their order) to one Parquet file."""
    columns = {name: [getattr(e, name) for e in events] for name in _EVENT_SCHEMA.names}
    columns["categories"] = [list(e.categories) for e in events]
    pq.write_table(pa.table(columns, schema=_EVENT_SCHEMA), path)


def events_read_parquet(path: Path) -> list[EventRecord]:
    """The event records of one Parquet file written by ``events_write_parquet``, in order."""
    table = pq.read_table(path)
    columns = [table.column(name).to_pylist() for name in _EVENT_SCHEMA.names]
    return [
        EventRecord(user_id, ts, kind, tuple(categories or ()), item, session, engaged, device, campaign)
        for user_id, ts, kind, categories, item, session, engaged, device, campaign in zip(*columns, strict=True)
    ]


_SAMPLE_LISTS: dict[str, Any] = {
    "candidates": pa.int64(),
    "rows": pa.float32(),
    "items": pa.int64(),
    "cats": pa.int64(),
    "ages": pa.float32(),
    "labels": pa.float32(),
    "kinds": pa.int64(),
}


def samples_write_parquet(samples: Sequence[Sample], path: Path) -> None:
    """Write samples to one Parquet file (the arrays flattened into list columns)."""
    columns: dict[str, Any] = {
        "user_id": pa.array([s.user_id for s in samples], pa.string()),
        "ts": pa.array([s.ts for s in samples], pa.float64()),
    }
    for name, kind in _SAMPLE_LISTS.items():
        columns[name] = pa.array([np.asarray(getattr(s, name)).ravel() for s in samples], pa.list_(kind))
    pq.write_table(pa.table(columns), path)


def _lists(table: pa.Table, name: str, dtype: Any) -> list[np.ndarray]:
    column = table.column(name).combine_chunks()
    if len(column) == 0:
        return []
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(column))]


def samples_read_parquet(path: Path) -> list[Sample]:
    """The samples of one Parquet file written by ``samples_write_parquet``, in order."""
    table = pq.read_table(path)
    users = table.column("user_id").to_pylist()
    stamps = table.column("ts").to_pylist()
    arrays = {
        name: _lists(table, name, np.float32 if kind == pa.float32() else np.int64)
        for name, kind in _SAMPLE_LISTS.items()
    }
    features = len(PAIR_FEATURE_NAMES)
    return [
        Sample(
            user_id=user_id,
            ts=ts,
            candidates=arrays["candidates"][i],
            rows=arrays["rows"][i].reshape(-1, features),
            items=arrays["items"][i],
            cats=arrays["cats"][i].reshape(SEQUENCE_LENGTH, CATEGORIES_PER_EVENT),
            ages=arrays["ages"][i],
            labels=arrays["labels"][i],
            kinds=arrays["kinds"][i],
        )
        for i, (user_id, ts) in enumerate(zip(users, stamps, strict=True))
    ]


# -- the sharded result -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    path: Path
    samples: int  # samples in the shard
    pairs: int  # (sample, candidate) rows: LightGBM's rows
    events: int
    seconds: float  # the partition task's own time


class ShardedSamples(Sequence[Sample]):
    """Samples kept in Parquet shards (each sorted by time and visitor). Reading an item or iterating
    loads every shard into this process; the distributed trainers read ``shards`` where they run."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        self.shards = [s for s in shards if s.samples]
        self._loaded: list[Sample] | None = None

    def __len__(self) -> int:
        return sum(s.samples for s in self.shards)

    def _all(self) -> list[Sample]:
        if self._loaded is None:
            self._loaded = [sample for shard in self.shards for sample in samples_read_parquet(shard.path)]
        return self._loaded

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._all())


# -- the builder ------------------------------------------------------------------------------------


def _partition_build(events_path: str, options_path: str, samples_path: str) -> dict[str, Any]:
    """One partition (a Dask task): its visitors' events -> samples (sorted) -> a Parquet shard."""
    started = time.perf_counter()
    events = events_read_parquet(Path(events_path))
    with open(options_path, "rb") as handle:
        options = pickle.load(handle)
    samples = list(samples_build(events, **options))
    samples.sort(key=lambda s: (s.ts, s.user_id))  # stable: a visitor's equal times keep their order
    samples_write_parquet(samples, Path(samples_path))
    return {
        "path": samples_path,
        "samples": len(samples),
        "pairs": int(sum(s.candidates.size for s in samples)),
        "events": len(events),
        "seconds": time.perf_counter() - started,
    }


@dataclass
class BuildFacts:
    """What the builder did, summed over the streams it built (fit and validation)."""

    partitions: int
    rows: int = 0
    events: int = 0
    seconds: float = 0.0
    population_seconds: float = 0.0
    export_seconds: float = 0.0
    partition_seconds: list[float] = field(default_factory=list)
    retried: int = 0

    def as_dict(self) -> dict[str, Any]:
        cost = self.partition_seconds
        return {
            "rows": self.rows,
            "events": self.events,
            "seconds": round(self.seconds, 2),
            "population_pass_seconds": round(self.population_seconds, 2),
            "export_seconds": round(self.export_seconds, 2),
            "partition_seconds": {
                "total": round(sum(cost), 2),
                "max": round(max(cost), 2) if cost else 0.0,
                "mean": round(sum(cost) / len(cost), 3) if cost else 0.0,
            },
            "partition_tasks": len(cost),
        }


class DaskSamplesBuilder:
    """The distributed ``SamplesBuilder``: see the module docstring.

    ``directory`` must be readable by every worker (the same machine for a ``LocalCluster``, shared
    storage for a real cluster); each call writes a fresh sub-directory of it.
    """

    def __init__(
        self,
        client: Any,
        directory: Path,
        *,
        partitions: int,
        progress: Progress | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.client = client
        self.directory = Path(directory)
        self.partitions = partitions
        self.progress = progress
        self.facts = BuildFacts(partitions=partitions)

    def __call__(self, events: Sequence[EventRecord], **options: Any) -> ShardedSamples:
        from distributed import as_completed

        began = time.perf_counter()
        build = self.directory / f"build-{uuid.uuid4().hex[:8]}"
        build.mkdir(parents=True)
        say = self.progress or (lambda fraction, message: None)

        say(0.0, f"population pass over {len(events):,} events")
        log: dict[PointKey, PopulationFeatures] = {}
        for _ in training_points(
            events,
            horizon=options["horizon"],
            sample_every=options.get("every", 5),
            min_history=options.get("min_history", 5),
            start_index=options.get("start_index"),
            stop_index=options.get("stop_index"),
            seed=options.get("seed", 0),
            returns=options.get("returns", False),
            prediction_times=options.get("prediction_times"),
            users=(),
            population_log=log,
        ):
            pass  # nothing is yielded without users: the pass only fills the log
        population_seconds = time.perf_counter() - began

        exported = time.perf_counter()
        parts: list[list[EventRecord]] = [[] for _ in range(self.partitions)]
        for event in events:
            parts[visitor_partition(event.user_id, self.partitions)].append(event)
        readouts: list[dict[PointKey, PopulationFeatures]] = [{} for _ in range(self.partitions)]
        for key, readout in log.items():
            readouts[visitor_partition(key[0], self.partitions)][key] = readout
        tasks = []
        for index, part in enumerate(parts):
            if not part:
                continue
            events_path = build / f"events-{index:05d}.parquet"
            options_path = build / f"options-{index:05d}.pickle"
            events_write_parquet(part, events_path)
            own = {k: v for k, v in options.items() if k not in _PER_VISITOR}
            visitors = {e.user_id for e in part}
            for name in _PER_VISITOR:
                table: Mapping[str, Any] | None = options.get(name)
                if table is not None:
                    own[name] = {u: value for u, value in table.items() if u in visitors}
            own["populations"] = readouts[index]
            with open(options_path, "wb") as handle:
                pickle.dump(own, handle, protocol=pickle.HIGHEST_PROTOCOL)
            tasks.append((str(events_path), str(options_path), str(build / f"samples-{index:05d}.parquet")))
        export_seconds = time.perf_counter() - exported

        futures = [
            self.client.submit(_partition_build, *task, pure=False, key=f"samples-{build.name}-{i}")
            for i, task in enumerate(tasks)
        ]
        results: dict[str, dict[str, Any]] = {}
        for done, future in enumerate(as_completed(futures), 1):
            result = future.result()  # a partition that failed (after Dask's retries) fails the build
            results[result["path"]] = result
            say(done / len(futures), f"partition {done}/{len(futures)} done")
        shards = [
            Shard(Path(r["path"]), r["samples"], r["pairs"], r["events"], r["seconds"])
            for r in (results[task[2]] for task in tasks)
        ]
        facts = self.facts
        facts.rows += sum(s.samples for s in shards)
        facts.events += len(events)
        facts.seconds += time.perf_counter() - began
        facts.population_seconds += population_seconds
        facts.export_seconds += export_seconds
        facts.partition_seconds.extend(s.seconds for s in shards)
        return ShardedSamples(shards)
