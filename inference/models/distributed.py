"""Both learned models trained on a Dask cluster, over the distributed builder's Parquet shards.

- ``gbdt_fit_dask``: LightGBM's own distributed engine, ``lightgbm.dask`` (data-parallel trees over
  the workers' shards). The objectives, parameters and choice between them are ``gbdt_fit``'s.
  Early stopping is on the same validation slice: every worker reads the whole slice and scores it
  after each round with the trees they all share, so all stop at the same round (LightGBM's own
  metrics are computed per worker on the local part of an eval set, which would let workers
  disagree and hang the ring). A worker lost during the fit fails it at once (``StageWatch``: LightGBM
  itself would wait forever for a peer that dies before the ring is linked, and the ring's tasks are
  pinned to their workers, so Dask cannot run them elsewhere); a peer that is alive but silent (a
  network partition) fails it after LightGBM's socket ``time_out`` of ``network_timeout_minutes``
  (10; LightGBM's own default is 120).
- ``neural_fit_ddp``: PyTorch ``DistributedDataParallel``, **one rank per Dask worker** (gloo on CPU,
  NCCL on CUDA): the shards are already on the cluster, the ranks are placed and watched by the same
  scheduler, and a lost worker fails the run through the same futures; ``torchrun`` would need a
  second launcher on every machine. Each rank trains on its shards with a per-rank batch of
  ``batch_size / world_size`` (the gradient average equals the single-process batch's); rank 0 scores
  the validation slice after each epoch and broadcasts the figure, so all ranks stop together and the
  kept epoch is chosen as ``neural_fit`` chooses it. The ranks train one network (``members`` = 1,
  where ``neural_fit`` trains ``members`` of them one after another). A worker of the ranks that leaves the cluster
  fails the run at once (``StageWatch``), and a rank that waits longer than ``ddp_timeout_s`` for the
  others (a peer alive but silent) raises.

Both report their progress to the driver as they go (LightGBM's rounds with the validation figure,
the network's epochs), through Dask worker events (``progress_report``).

Both return the models ``model_fit`` returns locally (same classes, same artifacts), with the
engine's facts in ``model.training["engine"]``.
"""

from __future__ import annotations

import copy
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from inference.models.base import Progress
from inference.models.gbdt import GbdtModel
from inference.models.inputs import PAIR_FEATURE_NAMES, Sample
from inference.models.neural import NeuralModel
from inference.models.training import TrainingData, ndcg_of_samples
from inference.training.cluster import StageWatch, progress_report, worker_addresses
from inference.training.distributed import ShardedSamples, samples_read_parquet, samples_write_parquet

__all__ = ["gbdt_fit_dask", "neural_fit_ddp"]

# LightGBM's socket time-out between the ring's workers, in minutes (its default, 120, let a silent
# peer hold the run for two hours); longer than any one wait for a peer in a healthy ring
NETWORK_TIMEOUT_MINUTES = 10
REPORT_EVERY_S = 0.5  # progress events from a worker at most this often


def _shards(data: TrainingData) -> ShardedSamples:
    if not isinstance(data.fit, ShardedSamples):
        raise TypeError("the dask engine trains on samples built by the distributed builder (ShardedSamples)")
    if not data.fit.shards:
        raise ValueError("no training samples")
    return data.fit


def _validation_path(data: TrainingData, directory: Path) -> str | None:
    if not data.validation:
        return None
    path = directory / f"validation-{uuid.uuid4().hex[:8]}.parquet"
    samples_write_parquet(data.validation, path)
    return str(path)




# -- LightGBM --------------------------------------------------------------------------------------


def _shard_arrays(path: str, objective: str, category_feature: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from inference.models.gbdt import _features, _labels

    samples = samples_read_parquet(Path(path))
    return (
        _features(samples, category_feature=category_feature),
        _labels(samples, objective),
        np.array([s.candidates.size for s in samples], dtype=np.int64),
    )


class _ValidationStop:
    """LightGBM callback run on every worker: the validation slice's NDCG@5 after each round (the trees
    are the same on every worker, so is the figure), stopping after ``patience`` rounds without gain."""

    order = 30

    def __init__(self, path: str, patience: int, category_feature: bool) -> None:
        self.path, self.patience, self.category_feature = path, patience, category_feature
        self._state: dict[str, Any] | None = None
        self.last: tuple[float, float, int] | None = None  # (this round's NDCG@5, best, best round)

    def _setup(self) -> dict[str, Any]:
        from inference.models.gbdt import _features

        samples = samples_read_parquet(Path(self.path))
        sizes = np.array([s.candidates.size for s in samples])
        width = max(int(sizes.max(initial=0)), 1)
        labels = np.zeros((len(samples), width))
        for i, s in enumerate(samples):
            labels[i, : s.candidates.size] = s.labels
        keep = labels.sum(axis=1) > 0
        k = 5
        discounts = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = (-np.sort(-labels, axis=1))[:, :k] @ discounts[: min(k, width)]
        return {
            "matrix": _features(samples, category_feature=self.category_feature),
            "bounds": np.concatenate([[0], np.cumsum(sizes)]),
            "sizes": sizes,
            "labels": labels,
            "keep": keep,
            "ideal": ideal,
            "discounts": discounts,
            "raw": None,
            "best": (-1.0, 0),
        }

    def __call__(self, env: Any) -> None:
        import lightgbm as lgb

        state = self._state = self._state or self._setup()
        contribution = env.model.predict(
            state["matrix"], start_iteration=env.iteration, num_iteration=1, raw_score=True
        )
        state["raw"] = contribution if state["raw"] is None else state["raw"] + contribution
        ndcg = self._ndcg(state)
        best, best_iteration = state["best"]
        if ndcg > best:
            state["best"] = best, best_iteration = ndcg, env.iteration
        self.last = (ndcg, best, best_iteration)
        if env.iteration - best_iteration >= self.patience or env.iteration == env.end_iteration - 1:
            raise lgb.callback.EarlyStopException(best_iteration, [("validation", "ndcg@5", best, True)])

    @staticmethod
    def _ndcg(state: Mapping[str, Any]) -> float:
        labels, sizes = state["labels"], state["sizes"]
        scores = np.full(labels.shape, -np.inf)
        raw, bounds = state["raw"], state["bounds"]
        for i in range(len(sizes)):
            scores[i, : sizes[i]] = raw[bounds[i] : bounds[i + 1]]
        k = min(5, labels.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        dcg = np.take_along_axis(labels, top, axis=1) @ state["discounts"][:k]
        keep = state["keep"]
        return float(np.mean(dcg[keep] / state["ideal"][keep])) if keep.any() else 0.0


class _RoundsReport:
    """LightGBM callback run on every worker: the round (and the validation figure, when the slice is
    scored) sent to the driver at most every ``REPORT_EVERY_S`` (the rounds are in step on every worker,
    so the driver keeps the furthest)."""

    order = 20  # before _ValidationStop, which ends the fit by raising

    def __init__(self, topic: str, objective: str, stop: _ValidationStop | None) -> None:
        self.topic, self.objective, self.stop = topic, objective, stop
        self._sent = 0.0

    def __call__(self, env: Any) -> None:
        now = time.monotonic()
        if now - self._sent < REPORT_EVERY_S and env.iteration not in (env.begin_iteration, env.end_iteration - 1):
            return
        self._sent = now
        fields: dict[str, Any] = {"objective": self.objective, "round": env.iteration + 1, "rounds": env.end_iteration}
        if self.stop is not None and self.stop.last is not None:  # the figure of the round before
            _, best, best_round = self.stop.last
            fields.update(best=round(best, 4), best_round=best_round + 1)
        progress_report(self.topic, **fields)


def gbdt_fit_dask(
    data: TrainingData,
    *,
    categories: Sequence[str],
    client: Any,
    directory: Path,
    seed: int = 0,
    hyperparameters: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> GbdtModel:
    """``gbdt_fit`` with ``lightgbm.dask`` over the fit shards (see the module docstring)."""
    import dask.array as da
    from dask import delayed
    from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRanker

    from inference.models.gbdt import (
        DEFAULT_HYPERPARAMETERS,
        _boosters_choose,
        _category_feature,
        _lgb_params,
    )

    shards = _shards(data)
    params = {**DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    params.update(popular_k=data.popular_k, item_buckets=data.item_buckets)
    objectives = ["lambdarank", "binary"] if params["objective"] == "auto" else [params["objective"]]
    started = time.perf_counter()
    category_feature = _category_feature(params, len(categories))
    validation = _validation_path(data, directory)
    width = len(PAIR_FEATURE_NAMES) + 1

    def train(objective: str) -> Any:
        parts = [
            delayed(_shard_arrays, pure=True)(str(shard.path), objective, category_feature)
            for shard in shards.shards
        ]
        X = da.concatenate(
            [da.from_delayed(p[0], shape=(s.pairs, width), dtype=np.float32) for p, s in zip(parts, shards.shards, strict=True)]
        )
        y = da.concatenate(
            [da.from_delayed(p[1], shape=(s.pairs,), dtype=np.float32) for p, s in zip(parts, shards.shards, strict=True)]
        )
        group = da.concatenate(
            [da.from_delayed(p[2], shape=(s.samples,), dtype=np.int64) for p, s in zip(parts, shards.shards, strict=True)]
        )
        lgb_params = _lgb_params(objective, params, seed)
        lgb_params.pop("metric", None)
        lgb_params.pop("eval_at", None)
        lgb_params["time_out"] = int(params.get("network_timeout_minutes", NETWORK_TIMEOUT_MINUTES))
        stop = _ValidationStop(validation, int(params["early_stopping_rounds"]), category_feature) if validation else None
        index = objectives.index(objective)

        def on_round(message: Mapping[str, Any]) -> None:
            if progress is None:
                return
            done, total = int(message["round"]), max(int(message["rounds"]), 1)
            figure = (
                f", validation NDCG@5 {message['best']:.4f} at round {message['best_round']}" if "best" in message else ""
            )
            progress((index + done / total) / len(objectives), f"gbdt {objective}: round {done}/{total}{figure}")

        with StageWatch(client, stage=f"lightgbm.dask ({objective})", on_progress=on_round,
                        cancel_prefixes=("_train_part-",)) as watch:
            fit_options: dict[str, Any] = {
                "feature_name": [*PAIR_FEATURE_NAMES, "category_id"],
                "categorical_feature": [width - 1],
                "callbacks": [_RoundsReport(watch.topic, objective, stop), *([stop] if stop else [])],
            }
            common = {"client": client, "n_estimators": int(params["max_rounds"]), **lgb_params}
            if objective == "lambdarank":
                model = watch.run(lambda: DaskLGBMRanker(**common).fit(X, y, group=group, **fit_options))
            else:
                model = watch.run(lambda: DaskLGBMClassifier(**common).fit(X, y, **fit_options))
        return model.booster_

    workers = len(worker_addresses(client))
    result = _boosters_choose(
        data,
        objectives,
        train,
        categories=categories,
        params=params,
        category_feature=category_feature,
        progress=progress,
        started=started,
    )
    result.training["engine"] = {
        "engine": "lightgbm.dask",
        "workers": workers,
        "shards": len(shards.shards),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return result


# -- PyTorch DistributedDataParallel ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def _torch_import() -> None:
    import torch  # noqa: F401


def _neural_rank(
    rank: int,
    world: int,
    init_method: str,
    paths: Sequence[str],
    validation: str | None,
    n_categories: int,
    params: Mapping[str, Any],
    seed: int,
    device: str,
    topic: str | None = None,
) -> dict[str, Any] | None:
    """One DDP rank (a Dask task pinned to one worker); rank 0 returns the kept weights and reports
    each epoch to the driver (``topic``)."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from inference.models.neural import _batch_loss, _device, _network, _pack, _seed_everything

    target = _device(device)
    if target.type == "cuda":
        target = torch.device("cuda", rank % torch.cuda.device_count())
    backend = "nccl" if target.type == "cuda" else "gloo"
    if target.type == "cpu":
        torch.set_num_threads(int(params["train_threads"]))
    dist.init_process_group(
        backend,
        init_method=init_method,
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=float(params.get("ddp_timeout_s", 300))),
    )
    try:
        _seed_everything(seed)
        samples: list[Sample] = [s for path in paths for s in samples_read_parquet(Path(path))]
        features = len(PAIR_FEATURE_NAMES)
        rows = np.concatenate([s.rows for s in samples]) if samples else np.zeros((0, features))
        # the global mean and std of the pair features (as neural_fit computes them over all rows)
        sums = torch.tensor(
            np.concatenate([[len(rows)], rows.sum(axis=0, dtype=np.float64), (rows.astype(np.float64) ** 2).sum(axis=0)]),
            dtype=torch.float64,
        )
        dist.all_reduce(sums)
        count = max(float(sums[0]), 1.0)
        mean64 = sums[1 : 1 + features].numpy() / count
        std64 = np.sqrt(np.maximum(sums[1 + features :].numpy() / count - mean64**2, 0.0))
        mean = mean64.astype(np.float32)
        std = np.where(std64 < 1e-3, 1.0, std64).astype(np.float32)
        fit = _pack(samples, mean, std)
        network = _network(n_categories, params).to(target)
        model = DistributedDataParallel(network)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=float(params["learning_rate"]), weight_decay=float(params["weight_decay"])
        )
        generator = torch.Generator().manual_seed(seed * 1000 + rank)
        local_batch = max(1, int(params["batch_size"]) // world)
        n = len(samples)
        most = torch.tensor([n], dtype=torch.int64)
        dist.all_reduce(most, op=dist.ReduceOp.MAX)
        steps = -(-int(most) // local_batch)  # every rank takes as many steps (each is an all-reduce)
        validation_samples = samples_read_parquet(Path(validation)) if (validation and rank == 0) else []
        scorer = NeuralModel(
            network=network, mean=mean, std=std, categories=[str(i) for i in range(n_categories)],
            popularity={}, hyperparameters=dict(params),
        )
        best_ndcg, best_state, best_epoch, waited, epochs = -1.0, copy.deepcopy(network.state_dict()), 0, 0, 0
        for epoch in range(int(params["max_epochs"])):
            epochs = epoch + 1
            network.train()
            order = torch.randperm(max(n, 1), generator=generator)
            order = order.repeat(-(-steps * local_batch // max(n, 1)))[: steps * local_batch]
            for step in range(steps):
                index = order[step * local_batch : (step + 1) * local_batch]
                loss = _batch_loss(model, {k: v[index] for k, v in fit.items()}, target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            network.eval()
            figure = torch.zeros(1, dtype=torch.float64)
            if rank == 0:
                figure[0] = ndcg_of_samples(validation_samples, scorer.score_many(validation_samples)) if validation_samples else 0.0
            dist.broadcast(figure, src=0)
            ndcg = float(figure[0])
            if ndcg > best_ndcg + 1e-5:
                best_ndcg, best_state, best_epoch, waited = ndcg, copy.deepcopy(network.state_dict()), epochs, 0
            else:
                waited += 1
            if rank == 0:
                progress_report(
                    topic, epoch=epochs, epochs=int(params["max_epochs"]), ndcg=round(ndcg, 4),
                    best=round(best_ndcg, 4), best_epoch=best_epoch,
                )
            if waited >= int(params["patience"]):
                break
        if rank != 0:
            return None
        return {
            "state": {k: v.detach().cpu().numpy() for k, v in best_state.items()},
            "mean": mean,
            "std": std,
            "epochs": epochs,
            "best_epoch": best_epoch,
            "validation_ndcg@5": best_ndcg,
            "backend": backend,
            "device": str(target),
        }
    finally:
        dist.destroy_process_group()


def neural_fit_ddp(
    data: TrainingData,
    *,
    categories: Sequence[str],
    client: Any,
    directory: Path,
    seed: int = 0,
    device: str = "auto",
    hyperparameters: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> NeuralModel:
    """``neural_fit`` with torch.distributed, one rank per Dask worker (see the module docstring)."""
    import torch

    from inference.models.neural import DEFAULT_HYPERPARAMETERS, _network

    shards = _shards(data)
    params = {**DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    # the ranks train one network together (``members`` is ``neural_fit``'s: one process per network)
    params.update(popular_k=data.popular_k, item_buckets=data.item_buckets, members=1)
    started = time.perf_counter()
    workers = worker_addresses(client)
    world = min(len(workers), len(shards.shards))
    workers = workers[:world]
    # the shards to the ranks, largest first to the least loaded
    loads = [0] * world
    paths: list[list[str]] = [[] for _ in range(world)]
    for shard in sorted(shards.shards, key=lambda s: -s.samples):
        rank = loads.index(min(loads))
        loads[rank] += shard.samples
        paths[rank].append(str(shard.path))
    host = workers[0].split("://", 1)[-1].rsplit(":", 1)[0]
    port = client.run(_free_port, workers=[workers[0]])[workers[0]]
    validation = _validation_path(data, directory)
    if progress:
        progress(0.0, f"neural: {world} DDP ranks on {world} workers")
    # torch imported on every worker first: a first import takes seconds, and rank 0 waits for the
    # others to join only ddp_timeout_s
    client.run(_torch_import, workers=workers)

    def on_epoch(message: Mapping[str, Any]) -> None:
        if progress is not None:
            epoch, most = int(message["epoch"]), max(int(message["epochs"]), 1)
            progress(
                min(epoch / most, 0.99),
                f"neural: epoch {epoch}/{most}, validation NDCG@5 {message['ndcg']:.4f} "
                f"(best {message['best']:.4f}, epoch {message['best_epoch']})",
            )

    with StageWatch(client, stage="torch.distributed ranks", ring=workers, on_progress=on_epoch) as watch:
        futures = [
            client.submit(
                _neural_rank,
                rank,
                world,
                f"tcp://{host}:{port}",
                paths[rank],
                validation,
                len(categories),
                params,
                seed,
                device,
                watch.topic,
                workers=[workers[rank]],
                allow_other_workers=False,
                pure=False,
                retries=0,
                key=f"neural-rank-{rank}-{uuid.uuid4().hex[:8]}",
            )
            for rank in range(world)
        ]
        # the first rank that fails (a lost peer times out its collective) or a lost worker ends the run
        outcome = watch.wait(futures)[0]
    network = _network(len(categories), params)
    network.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in outcome["state"].items()})
    network.eval()
    if progress:
        progress(1.0, f"neural: kept epoch {outcome['best_epoch']} (validation NDCG@5 {outcome['validation_ndcg@5']:.4f})")
    seconds = round(time.perf_counter() - started, 2)
    training = {
        "train_seconds": seconds,
        "device": outcome["device"],
        "epochs": outcome["epochs"],
        "best_epoch": outcome["best_epoch"],
        "validation_ndcg@5": round(outcome["validation_ndcg@5"], 4),
        "fit_samples": len(shards),
        "validation_samples": len(data.validation),
        "engine": {
            "engine": "torch.distributed",
            "world_size": world,
            "backend": outcome["backend"],
            "launcher": "one rank per Dask worker",
            "seconds": seconds,
        },
    }
    return NeuralModel(
        network=network,
        mean=outcome["mean"],
        std=outcome["std"],
        categories=categories,
        popularity=data.popularity,
        hyperparameters=params,
        training=training,
    ).calibrate(data.validation)  # as neural_fit's model is
