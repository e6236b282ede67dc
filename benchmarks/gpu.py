"""``make bench-gpu``: the neural model on a CUDA GPU (issue 3's GPU check and issue 4 point 4).

    python -m benchmarks.gpu [--device cuda] [--quick]

On a machine without CUDA it prints that it needs CUDA and exits 0. With CUDA, in a few minutes:

1. trains the neural model on MovieLens (all 100,836 ratings) on the GPU and reports the time (sample
   building on the CPU and the fit on the GPU, separately as the model reports them);
2. scores batches of 1 .. 512 users with the network resident on the GPU: p50/p99 per batch and
   users/s, both for the forward pass alone and for the whole ``score_many`` (packing on the CPU,
   host-to-device copy, forward, copy back);
3. drives the serving path (``fastpath.accelerate(device="cuda")``: the micro-batcher, ~1 ms wait,
   bounded queue) with 1 .. 64 concurrent request threads: per-call p50/p99, throughput, mean batch.

Prints Markdown rows and writes ``var/bench/gpu.json``. ``--device cpu --quick`` runs the same code on
the CPU with small sizes (to check the script itself where no GPU is lent).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import SHARED_DATA

ROOT = Path(__file__).resolve().parent.parent
MOVIELENS = SHARED_DATA / "movielens-latest-small"


def _pct(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[98]


def _row(name: str, value: str, note: str = "") -> dict[str, str]:
    print(f"| {name} | {value} | {note} |", flush=True)
    return {"name": name, "value": value, "note": note}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes (a check of the script itself)")
    args = parser.parse_args()
    import torch

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("benchmarks.gpu needs CUDA (torch.cuda.is_available() is False here): nothing measured.")
        return
    if not MOVIELENS.is_dir():
        print(f"benchmarks.gpu needs {MOVIELENS}: nothing measured.")
        return
    torch.set_num_threads(1)
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
    django.setup()  # the MovieLens reader names categories with tracking's rule
    from inference.evaluation.reading import events_read_movielens
    from inference.models import model_train
    from inference.models.neural import NeuralModel, _inputs, _pack
    from inference.serving.fastpath import accelerate
    from inference.store.memory import MemoryFeatureStore

    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    print(f"device: {name}; torch {torch.__version__}; date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print("| benchmark | figure | note |\n|---|---|---|")
    rows: list[dict[str, str]] = []

    events = sorted(events_read_movielens(MOVIELENS), key=lambda e: e.ts)
    if args.quick:
        events = events[:15_000]
    categories = sorted({c for e in events for c in e.categories})
    started = time.perf_counter()
    hyper = {"max_epochs": 2} if args.quick else {}
    model = model_train(
        algorithm="neural", events=events, categories=categories, device=device, hyperparameters=hyper
    )
    total = time.perf_counter() - started
    assert isinstance(model, NeuralModel)
    rows.append(
        _row(
            f"train neural on MovieLens ({len(events):,} events) on {device}",
            f"{total:.1f} s total; fit {model.training.get('train_seconds')} s",
            f"epochs {model.training.get('epochs')}, validation NDCG@5 {model.training.get('validation_ndcg@5')}",
        )
    )

    store = MemoryFeatureStore()
    store.rebuild(events)
    users = sorted({e.user_id for e in events})
    samples = []
    for user_id in users:
        read = store.read(user_id)
        samples.append(model.inputs(user_id, read.user, read.population, read.user.now))
    while len(samples) < 512:
        samples = samples + samples
    network = model.network.to(device).eval()
    sizes = (1, 8, 64) if args.quick else (1, 8, 32, 64, 128, 256, 512)
    reps = 20 if args.quick else 200
    for size in sizes:
        batch = samples[:size]
        packed = _inputs(_pack(batch, model.mean, model.std), torch.device(device))
        forward: list[float] = []
        whole: list[float] = []
        with torch.inference_mode():
            for _ in range(10):
                network(*packed)
            _sync(device)
            for _ in range(reps):
                t0 = time.perf_counter()
                network(*packed)
                _sync(device)
                forward.append(time.perf_counter() - t0)
        model.score_many(batch)
        for _ in range(reps):
            t0 = time.perf_counter()
            model.score_many(batch)  # pack on the CPU + copy in + forward + copy out
            whole.append(time.perf_counter() - t0)
        f50, f99 = _pct(forward)
        w50, w99 = _pct(whole)
        rows.append(
            _row(
                f"batch {size}: forward / whole score_many",
                f"p50 {f50 * 1e3:.3f} / {w50 * 1e3:.3f} ms, p99 {f99 * 1e3:.3f} / {w99 * 1e3:.3f} ms",
                f"{size / f50:,.0f} / {size / w50:,.0f} users/s",
            )
        )

    served = accelerate(
        model,
        device=device,
        batched=True,
        batch={"max_batch": 64, "max_wait_ms": 1.0, "max_queue": 256, "timeout_ms": 50.0},
    )
    reads = [store.read(u) for u in users[:256]]
    seconds = 2.0 if args.quick else 5.0
    for threads in (1, 8, 64) if args.quick else (1, 8, 32, 64):
        latencies: list[list[float]] = [[] for _ in range(threads)]
        errors = [0]
        stop = time.perf_counter() + seconds
        served.batcher.batches = 0

        def client(
            i: int,
            stop: float = stop,
            latencies: list[list[float]] = latencies,
            threads: int = threads,
            errors: list[int] = errors,
        ) -> None:
            n = i
            while time.perf_counter() < stop:
                read = reads[n % len(reads)]
                n += threads
                t0 = time.perf_counter()
                try:
                    served.predict(read.user, read.population, now=read.user.now, top=10)
                except Exception:  # a full queue or a late batch: what the predictor would fall through on
                    errors[0] += 1
                    continue
                latencies[i].append(time.perf_counter() - t0)

        pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        flat = [x for xs in latencies for x in xs]
        p50, p99 = _pct(flat)
        batches = max(served.batcher.batches, 1)
        rows.append(
            _row(
                f"serving path, {threads} concurrent request threads (micro-batched, wait <= 1 ms)",
                f"{len(flat) / seconds:,.0f} predictions/s; p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms",
                f"mean batch {len(flat) / batches:.1f}; fell through {errors[0]}",
            )
        )
    served.batcher.close()
    out = ROOT / "var" / "bench" / "gpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"device": name, "date": datetime.now(UTC).isoformat(), "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
