"""The distributed training-set builder (Dask, 2 worker processes) against the single-process one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from inference.evaluation.reading import events_read
from inference.events import EventRecord
from inference.models.inputs import Sample
from inference.models.training import samples_list, training_samples
from inference.training.cluster import training_engine
from inference.training.distributed import DaskSamplesBuilder, ShardedSamples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_client() -> Iterator[object]:
    with training_engine("dask", workers=2) as engine:
        yield engine.client


def _taobao_sample(shared: Path, users: int = 30) -> list[EventRecord]:
    events = events_read(shared / "taobao-userbehavior-dev" / "events.csv", format="generic")
    chosen = sorted({e.user_id for e in events})[:users]
    keep = set(chosen)
    return [e for e in events if e.user_id in keep]


def _key(sample: Sample) -> tuple[float, str]:
    return (sample.ts, sample.user_id)


def _assert_same(local: list[Sample], distributed: list[Sample]) -> None:
    assert len(distributed) == len(local) > 20
    for mine, theirs in zip(sorted(local, key=_key), sorted(distributed, key=_key), strict=True):
        assert (mine.user_id, mine.ts) == (theirs.user_id, theirs.ts)
        for name in ("candidates", "rows", "items", "cats", "ages", "labels", "kinds"):
            np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name), err_msg=name)


def test_distributed_builder_yields_the_single_process_samples_row_for_row(
    shared_data: Path, dask_client: object, tmp_path: Path
) -> None:
    events = _taobao_sample(shared_data)
    categories = sorted({c for e in events for c in e.categories})
    index = {c: i for i, c in enumerate(categories)}
    options = dict(horizon=10, category_index=index, popular_k=20, item_buckets=8192, every=3, returns=True)
    builder = DaskSamplesBuilder(dask_client, tmp_path, partitions=5)

    sharded = builder(events, seed=1, **options)

    assert isinstance(sharded, ShardedSamples) and len(sharded.shards) > 1
    _assert_same(samples_list(events, seed=1, **options), list(sharded))
    # requested points (the time split's grid of cut-offs)
    users = sorted({e.user_id for e in events})
    times = {u: [events[len(events) // 2].ts, events[-len(events) // 4].ts] for u in users[::2]}
    requested = dict(options, every=None, prediction_times=times)
    _assert_same(samples_list(events, **requested), list(builder(events, **requested)))
    assert builder.facts.rows == len(sharded) + len(samples_list(events, **requested))
    assert builder.facts.partitions == 5 and builder.facts.events == 2 * len(events)


def test_training_samples_through_the_distributed_builder_match(
    shared_data: Path, dask_client: object, tmp_path: Path
) -> None:
    events = _taobao_sample(shared_data, users=30)
    categories = sorted({c for e in events for c in e.categories})
    # the user split: fit samples before each visitor's cut, validation points after it (start_index)
    local = training_samples(events, categories=categories, horizon=10, validation="user")
    distributed = training_samples(
        events,
        categories=categories,
        horizon=10,
        validation="user",
        build=DaskSamplesBuilder(dask_client, tmp_path, partitions=3),
    )
    assert isinstance(distributed.fit, ShardedSamples)
    _assert_same(list(local.fit), list(distributed.fit))
    _assert_same(local.validation, distributed.validation)
