"""A small PyTorch network scoring (user, candidate category) pairs.

The user's last 50 events become vectors (hashed item embedding + mean of the event's category
embeddings + a projection of the log age + an embedding of the event's kind: its type, view /
favourite / ad click / cart or purchase, and whether it opened a session); ``self_attention_layers``
SASRec-style blocks (masked multi-head self-attention and a feed-forward layer, residual, layer norm)
let each event see the rest of the sequence; then each candidate category attends over the events
(DIN-style target attention, the candidate's embedding is the query). The attended context, the candidate embedding,
their product and the standardized tabular pair features go through a small MLP to one score per
candidate. Loss: listwise softmax cross-entropy against the next-H counts of the candidates.
Early stopping on the NDCG@5 of the later validation slice. Trains on CUDA when available (``device
="auto"``), else on the CPU with a few threads; seeds fixed (torch, numpy, random) and deterministic
algorithms on.

With ``members`` > 1, that many networks are trained on the same samples from seeds ``seed``, ``seed +
1``, ... and served as one module (``InterestEnsemble``: the mean of their log-softmax over the
candidates). Off by default: two networks scored no better on average than one (docs/quality.md).

Size does not grow with the number of categories beyond one embedding row each, and inference cost
grows with the number of candidates (own categories + popular ones), not with the category count.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from inference.models.base import PairModel, Progress, manifest_read
from inference.models.gbdt import CATEGORY_FEATURE_MAX
from inference.models.inputs import (
    CATEGORIES_PER_EVENT,
    PAIR_FEATURE_NAMES,
    SEQUENCE_KINDS,
    SEQUENCE_LENGTH,
    Sample,
)
from inference.models.training import TrainingData, ndcg_of_samples

__all__ = ["NeuralModel", "InterestNetwork", "InterestEnsemble", "neural_fit", "DEFAULT_HYPERPARAMETERS"]

WEIGHTS_FILE = "weights.pt"
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    # chosen on the validation slice of the MovieLens training side (docs/quality.md): as good as
    # dim 24 / hidden 64 / batch 256 / lr 3e-3 (0.8185 vs 0.8193) in a third of the time
    "dim": 16,
    "hidden": 48,
    "dropout": 0.1,
    "learning_rate": 6e-3,
    "weight_decay": 1e-5,
    "batch_size": 512,
    "max_epochs": 30,
    "patience": 4,
    "train_threads": 1,  # OpenMP spin-waits badly on a shared machine: 1 thread was ~10x faster than 2 under load
    "popular_k": 20,
    "item_buckets": 8192,
    # SASRec-style blocks before the target attention: 0 by default, as one block bought nothing
    # measurable on either dataset's validation or test figures and took 1.7x the training time
    "self_attention_layers": 0,
    "heads": 2,
    # per-category and per-item embeddings: "auto" keeps them up to CATEGORY_FEATURE_MAX categories
    # (on Taobao's 2,108 they overfit within an epoch: validation 0.4739 with them, 0.4827 without)
    "identity_embeddings": "auto",
    # networks trained from consecutive seeds and averaged (InterestEnsemble); 1 = a single network. Two
    # bought nothing on average for twice the training and serving cost (Taobao 0.3476 against 0.3483
    # over three seeds, MovieLens 0.836 against 0.835: docs/quality.md)
    "members": 1,
}


class SelfAttentionBlock(nn.Module):
    """One SASRec-style block over the sequence: multi-head self-attention over the present events
    (padding masked), then a position-wise feed-forward layer, each residual with layer norm. Written
    with einsum and softmax so that the ONNX export is the plain graph."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.dropout = nn.Dropout(dropout)
        self.scale = 1.0 / math.sqrt(dim // heads)

    def forward(self, events: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b, length, dim = events.shape
        q, k, v = self.qkv(events).reshape(b, length, 3, self.heads, dim // self.heads).unbind(2)
        logits = torch.einsum("blhd,bmhd->bhlm", q, k) * self.scale
        logits = logits.masked_fill(~present[:, None, None, :], -1e4)
        attended = torch.einsum("bhlm,bmhd->blhd", torch.softmax(logits, dim=-1), v).reshape(b, length, dim)
        events = self.norm1(events + self.dropout(self.out(attended)))
        events = self.norm2(events + self.dropout(self.ffn(events)))
        return events * present.unsqueeze(-1).float()


class InterestNetwork(nn.Module):
    def __init__(
        self,
        *,
        n_categories: int,
        n_features: int,
        item_buckets: int,
        dim: int,
        hidden: int,
        dropout: float,
        self_attention_layers: int = 1,
        heads: int = 2,
        identity_embeddings: bool = True,
    ):
        super().__init__()
        # without identity embeddings (a retailer's thousands of sparse categories and millions of items,
        # which a small sample memorizes within an epoch) every category shares one row and every item
        # another: the network learns from when and how the user met a category (the pair features, the
        # events' ages and types), and its attention finds a candidate's events by matching indices
        self.identity_embeddings = identity_embeddings
        rows = n_categories + 1 if identity_embeddings else 2
        self.item = nn.Embedding(item_buckets if identity_embeddings else 2, dim, padding_idx=0)
        self.category = nn.Embedding(rows, dim, padding_idx=0)  # index 0 = none
        self.candidate = nn.Embedding(rows, dim)
        self.match = nn.Parameter(torch.tensor(2.0))
        self.kind = nn.Embedding(SEQUENCE_KINDS, dim, padding_idx=0)
        self.blocks = nn.ModuleList(SelfAttentionBlock(dim, heads, dropout) for _ in range(self_attention_layers))
        self.age = nn.Linear(1, dim)
        self.query = nn.Linear(dim, dim, bias=False)
        self.scale = 1.0 / math.sqrt(dim)
        self.mlp = nn.Sequential(
            nn.Linear(n_features + 3 * dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2),
            nn.ReLU(),
            nn.Linear(hidden // 2, 1),
        )

    def forward(
        self,
        candidates: torch.Tensor,  # [B, C] category index + 1 (0 = padding)
        rows: torch.Tensor,  # [B, C, F] standardized pair features
        items: torch.Tensor,  # [B, L]
        cats: torch.Tensor,  # [B, L, K] category index + 1 (0 = none)
        ages: torch.Tensor,  # [B, L]
        kinds: torch.Tensor,  # [B, L] event type and session start (0 = padding)
    ) -> torch.Tensor:
        # [B, C, L]: the event holds the candidate's category
        match = (cats.unsqueeze(1) == candidates[:, :, None, None]).float().amax(-1)
        if not self.identity_embeddings:
            items = (items > 0).long()
            cats = (cats > 0).long()
            candidates = (candidates > 0).long()
        cat_mask = (cats > 0).float().unsqueeze(-1)
        cat_mean = (self.category(cats) * cat_mask).sum(2) / cat_mask.sum(2).clamp(min=1.0)
        events = self.item(items) + cat_mean + self.age(ages.unsqueeze(-1)) + self.kind(kinds)  # [B, L, D]
        present = items > 0
        present = present | (cats > 0).any(-1)
        for block in self.blocks:
            events = block(events, present)
        query = self.query(self.category(candidates))  # [B, C, D]
        logits = torch.einsum("bcd,bld->bcl", query, events) * self.scale + self.match * match
        logits = logits.masked_fill(~present.unsqueeze(1), -1e4)
        weights = torch.softmax(logits, dim=-1) * present.unsqueeze(1).float()
        context = torch.einsum("bcl,bld->bcd", weights, events)  # [B, C, D]
        cand = self.candidate(candidates)
        hidden = torch.cat([rows, cand, context, cand * context], dim=-1)
        return self.mlp(hidden).squeeze(-1)  # [B, C]


class InterestEnsemble(nn.Module):
    """Several ``InterestNetwork``s as one: the mean of their log-softmax over each row's candidates
    (padding masked out). Its scores are log-probabilities, so the calibration's log-softmax reading and
    the ranking are what one network's would be; the ONNX export is the same one graph."""

    def __init__(self, members: Sequence[InterestNetwork]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(
        self,
        candidates: torch.Tensor,
        rows: torch.Tensor,
        items: torch.Tensor,
        cats: torch.Tensor,
        ages: torch.Tensor,
        kinds: torch.Tensor,
    ) -> torch.Tensor:
        padding = candidates == 0
        total = torch.zeros(candidates.shape, dtype=rows.dtype, device=rows.device)
        for member in self.members:
            scores = member(candidates, rows, items, cats, ages, kinds).masked_fill(padding, -1e4)
            total = total + torch.log_softmax(scores, dim=-1)
        return total / len(self.members)


# standardized pair features are clipped to this many standard deviations: a column that barely varies
# in training (the idle time of a stream sampled every half hour: std 0.014) would otherwise reach the
# network at hundreds of standard deviations for a request made at another idle time
FEATURE_CLIP = 5.0


def _pack(samples: Sequence[Sample], mean: np.ndarray, std: np.ndarray) -> dict[str, torch.Tensor]:
    """Pad a list of samples into tensors (candidates padded to the longest list)."""
    n = len(samples)
    width = max((s.candidates.size for s in samples), default=1) or 1
    features = len(PAIR_FEATURE_NAMES)
    candidates = np.zeros((n, width), dtype=np.int64)
    rows = np.zeros((n, width, features), dtype=np.float32)
    labels = np.zeros((n, width), dtype=np.float32)
    items = np.zeros((n, SEQUENCE_LENGTH), dtype=np.int64)
    cats = np.zeros((n, SEQUENCE_LENGTH, CATEGORIES_PER_EVENT), dtype=np.int64)
    ages = np.zeros((n, SEQUENCE_LENGTH), dtype=np.float32)
    kinds = np.zeros((n, SEQUENCE_LENGTH), dtype=np.int64)
    for i, s in enumerate(samples):
        c = s.candidates.size
        candidates[i, :c] = s.candidates + 1
        rows[i, :c] = np.clip((s.rows - mean) / std, -FEATURE_CLIP, FEATURE_CLIP)
        labels[i, :c] = s.labels
        items[i], cats[i], ages[i], kinds[i] = s.items, s.cats, s.ages, s.kinds
    return {
        "candidates": torch.from_numpy(candidates),
        "rows": torch.from_numpy(rows),
        "items": torch.from_numpy(items),
        "cats": torch.from_numpy(cats),
        "ages": torch.from_numpy(ages),
        "kinds": torch.from_numpy(kinds),
        "labels": torch.from_numpy(labels),
    }


def _inputs(batch: Mapping[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(batch[k].to(device) for k in ("candidates", "rows", "items", "cats", "ages", "kinds"))


class NeuralModel(PairModel):
    algorithm = "neural"
    # the listwise softmax loss leaves each user's score level free: calibrate the log-softmax
    calibration_input = "log_softmax"

    def __init__(
        self,
        *,
        network: InterestNetwork | InterestEnsemble,
        mean: Sequence[float] | np.ndarray,
        std: Sequence[float] | np.ndarray,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.network = network.eval()
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    def score_many(self, samples: Sequence[Sample]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        device = next(self.network.parameters()).device
        with torch.inference_mode():
            for start in range(0, len(samples), 512):
                chunk = samples[start : start + 512]
                scores = (
                    self.network(*_inputs(_pack(chunk, self.mean, self.std), device)).float().cpu().numpy()
                )
                out.extend(scores[i, : s.candidates.size].astype(np.float64) for i, s in enumerate(chunk))
        return out

    def score(self, sample: Sample) -> np.ndarray:
        if sample.candidates.size == 0:
            return np.zeros(0)
        return self.score_many([sample])[0]

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        torch.save(state, directory / WEIGHTS_FILE)
        self._write_manifest(
            directory,
            {
                "artifacts": [WEIGHTS_FILE],
                "feature_mean": self.mean.tolist(),
                "feature_std": self.std.tolist(),
            },
        )

    @classmethod
    def load(cls, directory: Path) -> Self:
        manifest = manifest_read(directory)
        kwargs = cls._kwargs_from_manifest(manifest)
        network = _network(len(kwargs["categories"]), kwargs["hyperparameters"])
        state = torch.load(Path(directory) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        network.load_state_dict(state)  # raises on missing/unexpected/mis-shaped tensors
        return cls(network=network, mean=manifest["feature_mean"], std=manifest["feature_std"], **kwargs)


def _network(n_categories: int, params: Mapping[str, Any]) -> InterestNetwork | InterestEnsemble:
    """The module ``params`` describe: one network, or ``members`` of them as an ensemble (a model saved
    before ``members`` existed is one network)."""
    members = int(params.get("members", 1))
    if members <= 1:
        return _member(n_categories, params)
    return InterestEnsemble([_member(n_categories, params) for _ in range(members)])


def _member(n_categories: int, params: Mapping[str, Any]) -> InterestNetwork:
    return InterestNetwork(
        n_categories=n_categories,
        n_features=len(PAIR_FEATURE_NAMES),
        item_buckets=int(params["item_buckets"]),
        dim=int(params["dim"]),
        hidden=int(params["hidden"]),
        dropout=float(params["dropout"]),
        self_attention_layers=int(params.get("self_attention_layers", 0)),
        heads=int(params.get("heads", 2)),
        identity_embeddings=_identity_embeddings(params.get("identity_embeddings", "auto"), n_categories),
    )


def _identity_embeddings(setting: Any, n_categories: int) -> bool:
    """"auto": an embedding row per category and item bucket up to ``CATEGORY_FEATURE_MAX`` categories
    (the rule that turns LightGBM's category id off too)."""
    if setting == "auto":
        return n_categories <= CATEGORY_FEATURE_MAX
    return bool(setting)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _batch_loss(network: nn.Module, batch: Mapping[str, torch.Tensor], target: torch.device) -> torch.Tensor:
    """Listwise softmax cross-entropy of one batch against the candidates' next-H counts."""
    scores = network(*_inputs(batch, target))
    labels = batch["labels"].to(target)
    mask = batch["candidates"].to(target) > 0
    scores = scores.masked_fill(~mask, -1e4)
    target_dist = labels / labels.sum(-1, keepdim=True).clamp(min=1e-9)
    return -(target_dist * torch.log_softmax(scores, dim=-1)).sum(-1).mean()


def _feature_scale(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the pair features for standardizing them."""
    mean = rows.mean(axis=0).astype(np.float32)
    # A column constant in training (e.g. ad or session features on a dataset without them) keeps
    # a unit scale: a tiny std would blow a live non-zero value up to +-1e6 and let that one column
    # decide the ranking. Training inputs are unchanged (x - mean is 0 there).
    std = rows.std(axis=0)
    return mean, np.where(std < 1e-3, 1.0, std).astype(np.float32)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def neural_fit(
    data: TrainingData,
    *,
    categories: Sequence[str],
    seed: int = 0,
    device: str = "auto",
    hyperparameters: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> NeuralModel:
    """Fit ``members`` networks on ``data.fit`` (seeds ``seed``, ``seed + 1``, ...), each with early
    stopping on ``data.validation``; one network is served as it is, several as their ensemble."""
    params = {**DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    params.update(popular_k=data.popular_k, item_buckets=data.item_buckets)  # as the samples were built
    members = max(1, int(params["members"]))
    params["members"] = members
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    target = _device(device)
    if target.type == "cpu":
        torch.set_num_threads(int(params["train_threads"]))
    try:
        rows = (
            np.concatenate([s.rows for s in data.fit]) if data.fit else np.zeros((1, len(PAIR_FEATURE_NAMES)))
        )
        mean, std = _feature_scale(rows)
        fit = _pack(data.fit, mean, std)
        trained: list[InterestNetwork] = []
        facts: list[dict[str, Any]] = []
        for member in range(members):
            report = None
            if progress is not None:
                def report(share: float, message: str, member: int = member) -> None:
                    label = f"neural (network {member + 1} of {members})" if members > 1 else "neural"
                    progress((member + share) / members, message.replace("neural", label, 1))
            member_network, member_facts = _fit_member(
                data, fit, mean, std, categories=categories, params=params, seed=seed + member, target=target,
                progress=report,
            )
            trained.append(member_network)
            facts.append(member_facts)
        network: InterestNetwork | InterestEnsemble = trained[0] if members == 1 else InterestEnsemble(trained).eval()
        model = NeuralModel(
            network=network, mean=mean, std=std, categories=categories, popularity=data.popularity,
            hyperparameters=params,
        )
        validation = (
            ndcg_of_samples(data.validation, model.score_many(data.validation)) if data.validation else 0.0
        )
        if progress and members > 1:
            progress(1.0, f"neural: {members} networks averaged (validation NDCG@5 {validation:.4f})")
    finally:
        torch.set_num_threads(previous_threads)
    training = {
        "train_seconds": round(time.perf_counter() - started, 2),
        "device": str(target),
        "epochs": sum(f["epochs"] for f in facts),
        "best_epoch": facts[0]["best_epoch"],
        "validation_ndcg@5": round(validation, 4),
        "fit_samples": len(data.fit),
        "validation_samples": len(data.validation),
    }
    if members > 1:
        training["members"] = facts
    return NeuralModel(
        network=network,
        mean=mean,
        std=std,
        categories=categories,
        popularity=data.popularity,
        hyperparameters=params,
        training=training,
    ).calibrate(data.validation)


def _fit_member(
    data: TrainingData,
    fit: Mapping[str, torch.Tensor],
    mean: np.ndarray,
    std: np.ndarray,
    *,
    categories: Sequence[str],
    params: Mapping[str, Any],
    seed: int,
    target: torch.device,
    progress: Progress | None,
) -> tuple[InterestNetwork, dict[str, Any]]:
    """One network from ``seed``: the weights of its epoch with the best validation NDCG@5."""
    _seed_everything(seed)
    network = _member(len(categories), params).to(target)
    optimizer = torch.optim.Adam(
        network.parameters(),
        lr=float(params["learning_rate"]),
        weight_decay=float(params["weight_decay"]),
    )
    generator = torch.Generator().manual_seed(seed)
    n = len(data.fit)
    batch_size = int(params["batch_size"])
    model = NeuralModel(
        network=network, mean=mean, std=std, categories=categories, popularity=data.popularity,
        hyperparameters={**params, "members": 1},
    )
    best_ndcg, best_state, best_epoch, waited, epochs = -1.0, copy.deepcopy(network.state_dict()), 0, 0, 0
    max_epochs = int(params["max_epochs"])
    for epoch in range(max_epochs):
        epochs = epoch + 1
        network.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            loss = _batch_loss(network, {k: v[index] for k, v in fit.items()}, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        network.eval()
        ndcg = ndcg_of_samples(data.validation, model.score_many(data.validation)) if data.validation else 0.0
        if progress:
            progress(epochs / max_epochs, f"neural: epoch {epochs} validation NDCG@5 {ndcg:.4f}")
        if ndcg > best_ndcg + 1e-5:
            best_ndcg, best_state, best_epoch, waited = ndcg, copy.deepcopy(network.state_dict()), epochs, 0
        else:
            waited += 1
            if waited >= int(params["patience"]):
                break
    network.load_state_dict(best_state)
    network.to("cpu").eval()
    if progress:
        progress(1.0, f"neural: kept epoch {best_epoch} (validation NDCG@5 {best_ndcg:.4f})")
    facts = {"seed": seed, "epochs": epochs, "best_epoch": best_epoch, "validation_ndcg@5": round(best_ndcg, 4)}
    return network, facts
