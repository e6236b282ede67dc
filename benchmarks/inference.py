"""Inference benchmarks (issue 4): model calls, the whole predictor, the HTTP endpoint, a slowed model.

Sections (wired into ``benchmarks.run`` SECTIONS; each returns Markdown rows):

- ``training``: both models trained on MovieLens (all 100,836 ratings), seconds each (bar: 2 min total).
  The trained models are kept under ``BENCH_VAR/models`` for the other sections.
- ``predict``: in-process, one user per call, p50/p99 over a few thousand calls: the model call alone
  for every path measured (``Booster.predict`` one thread vs lleaves; torch eager in inference mode vs
  TorchScript vs ONNX Runtime), ``model.predict`` (pair inputs + score + ranking) on the serving path,
  and the whole predictor (feature read-out from the in-process store + chain + answer).
- ``neural_slow``: the neural model slowed past the budget (``benchmarks.slowed``): who served, reasons,
  latency, answers over budget.
- ``interests_http``: ``GET /api/v1/users/{id}/interests`` under gunicorn (2 workers, services mode:
  PostgreSQL + Redis) at 8 concurrent clients, beside the bare ``/healthz`` JSON view in the same run;
  then the same endpoint with the neural model slowed.

    python -m benchmarks.run --only training,predict,neural_slow,interests_http
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import SHARED_DATA
from benchmarks.load import run_load

ROOT = Path(__file__).resolve().parent.parent
MOVIELENS = Path(os.environ.get("BENCH_MOVIELENS") or SHARED_DATA / "movielens-latest-small")
CALLS = int(os.environ.get("BENCH_PREDICT_CALLS", "3000"))
BUDGET_MS = 5.0


def _bench_var() -> Path:
    from benchmarks.run import BENCH_VAR

    return BENCH_VAR


def _row(name: str, value: str, note: str = "") -> dict[str, str]:
    from benchmarks.run import row

    return row(name, value, note)


def _pct(values: Sequence[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[98]


def _us(values: Sequence[float]) -> str:
    p50, p99 = _pct(values)
    return f"p50 {p50 * 1e6:,.0f} µs, p99 {p99 * 1e6:,.0f} µs"


def _ms(values: Sequence[float]) -> str:
    p50, p99 = _pct(values)
    return f"p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms"


# --- data and models --------------------------------------------------------------------------------
def _events() -> list[Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
    django.setup()  # the reader names categories with tracking's rule (as imported events are named)
    from inference.evaluation.reading import events_read_movielens

    return sorted(events_read_movielens(MOVIELENS), key=lambda e: e.ts)


def _models_dir() -> Path:
    return _bench_var() / "models"


def _one_thread_math() -> None:
    import torch

    torch.set_num_threads(1)  # as each web process does (inference.serving.predictor)


def bench_training() -> list[dict[str, str]]:
    """Train gbdt and neural on all of MovieLens (CPU, one thread each); keep them for the others."""
    if not MOVIELENS.is_dir():
        return [_row("training", "skipped", f"{MOVIELENS} not found")]
    from inference.models import model_train

    events = _events()
    categories = sorted({c for e in events for c in e.categories})
    out_dir = _models_dir()
    shutil.rmtree(out_dir, ignore_errors=True)
    rows, total = [], 0.0
    for algorithm in ("gbdt", "neural"):
        started = time.perf_counter()
        model = model_train(algorithm=algorithm, events=events, categories=categories, device="cpu")
        elapsed = time.perf_counter() - started
        total += elapsed
        model.save(out_dir / algorithm)
        facts = {
            k: model.training.get(k) for k in ("validation_ndcg@5", "fit_samples", "best_iteration", "epochs")
        }
        rows.append(
            _row(
                f"training {algorithm} on MovieLens ({len(events):,} events, CPU)",
                f"{elapsed:.1f} s (samples + fit)",
                json.dumps({k: v for k, v in facts.items() if v is not None}),
            )
        )
    rows.append(_row("training both models on MovieLens", f"{total:.1f} s", "bar: <= 120 s"))
    return rows


def _trained() -> dict[str, Path]:
    """The two models (trained by ``bench_training`` when missing) and their blend, as served."""
    from inference.models import model_load
    from inference.models.blend import BlendModel

    dirs = {name: _models_dir() / name for name in ("gbdt", "neural")}
    if not all((d / "manifest.json").is_file() for d in dirs.values()):
        bench_training()
    dirs["blend"] = _models_dir() / "blend"
    if not (dirs["blend"] / "manifest.json").is_file():
        shutil.rmtree(dirs["blend"], ignore_errors=True)
        BlendModel([model_load(dirs["neural"]), model_load(dirs["gbdt"])]).save(dirs["blend"])
    return dirs


def _store(events: Sequence[Any]) -> Any:
    from inference.store.memory import MemoryFeatureStore

    store = MemoryFeatureStore()
    store.rebuild(events)
    return store


# --- in-process prediction ----------------------------------------------------------------------------
def _time_calls(fn: Callable[[Any], Any], args: Sequence[Any], calls: int, *, warm: int = 50) -> list[float]:
    for arg in args[:warm]:  # warm caches and lazy initialisation
        fn(arg)
    out = []
    for i in range(calls):
        arg = args[i % len(args)]
        started = time.perf_counter()
        fn(arg)
        out.append(time.perf_counter() - started)
    return out


def _interleaved(
    fns: dict[str, Callable[[Any], Any]], args: Sequence[Any], calls: int
) -> dict[str, list[float]]:
    """Time several ways of doing the same call in turn, so that load on the machine hits all alike."""
    for fn in fns.values():
        for arg in args[:50]:
            fn(arg)
    out: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(calls):
        arg = args[i % len(args)]
        for name, fn in fns.items():
            started = time.perf_counter()
            fn(arg)
            out[name].append(time.perf_counter() - started)
    return out


def _torchscript_scorer(model: Any) -> Callable[[Any], Any]:
    import torch

    from inference.models.neural import _pack

    keys = ("candidates", "rows", "items", "cats", "ages", "kinds")
    example = _pack([model.inputs("", None, None, time.time())], model.mean, model.std)
    with torch.inference_mode():
        traced = torch.jit.optimize_for_inference(
            torch.jit.freeze(
                torch.jit.trace(model.network, tuple(example[k] for k in keys), check_trace=False)
            )
        )

    def score(sample: Any) -> Any:
        packed = _pack([sample], model.mean, model.std)
        with torch.inference_mode():
            return traced(*(packed[k] for k in keys))

    return score


@dataclass(frozen=True)
class _Active:
    """A model version as the registry names it to the predictor (``ActiveVersionLike``)."""

    version: str
    artifact_dir: Path
    validation_score: float | None = None


def _predictor(
    dirs: dict[str, Path],
    store: Any,
    *,
    chain: tuple[str, ...],
    fastpath: dict[str, Any],
    delay_ms: dict[str, float] | None = None,
) -> Any:
    from benchmarks.slowed import SlowedLoader
    from inference.serving.adapters import ModelLoaderAdapter, PriorAdapter, StoreAdapter
    from inference.serving.predictor import Predictor, PredictorConfig

    def read(user_id: str, now: float | None = None) -> tuple[Any, Any]:
        found = store.read(user_id, now=now)
        return (None if found.user.is_cold else found.user), found.population

    adapter = StoreAdapter(read)
    active = {name: _Active(f"{name}-bench", path) for name, path in dirs.items() if name in chain}
    return Predictor(
        features=adapter,
        prior=PriorAdapter(adapter),
        loader=SlowedLoader(ModelLoaderAdapter(fastpath=fastpath), delay_ms or {}),
        registry_reader=lambda: active,
        config=PredictorConfig(poll_seconds=2.0, chain=chain),  # as served: background poll and probes
    ).start(background=True)


def bench_predict() -> list[dict[str, str]]:
    if not MOVIELENS.is_dir():
        return [_row("predict", "skipped", f"{MOVIELENS} not found")]
    _one_thread_math()
    from inference.models import model_load
    from inference.serving.deadline import Deadline
    from inference.serving.fastpath import accelerate, gbdt_compiled_scorer, neural_onnx_scorer

    dirs = _trained()
    events = _events()
    store = _store(events)
    users = sorted({e.user_id for e in events})
    random.Random(0).shuffle(users)
    users = users[:200]
    reads = [store.read(u) for u in users]
    rows: list[dict[str, str]] = []

    gbdt = model_load(dirs["gbdt"])
    neural = model_load(dirs["neural"])
    samples = {
        name: [m.inputs("", r.user, r.population, r.user.now) for r in reads]
        for name, m in (("gbdt", gbdt), ("neural", neural))
    }
    n_rows = statistics.mean(s.candidates.size for s in samples["gbdt"])
    cache = _bench_var() / "compiled"
    compiled = gbdt_compiled_scorer(gbdt, cache_dir=cache)
    booster_times = _interleaved(
        {
            "booster": lambda s: type(gbdt).score(gbdt, s),
            "lleaves": compiled,
        },
        samples["gbdt"],
        CALLS,
    )
    note = f"{n_rows:.0f} candidate rows per user; interleaved; bar p99 <= 0.2 ms"
    rows.append(_row("gbdt model call: Booster.predict (num_threads=1)", _us(booster_times["booster"]), note))
    rows.append(_row("gbdt model call: lleaves compiled (serving path)", _us(booster_times["lleaves"]), note))

    eager = lambda s: type(neural).score(neural, s)  # noqa: E731 - the model's own path (inference_mode)
    neural_times = _interleaved(
        {
            "eager": eager,
            "torchscript": _torchscript_scorer(neural),
            "onnxruntime": neural_onnx_scorer(neural),
        },
        samples["neural"],
        CALLS,
    )
    note = "one user, inputs already built; interleaved; bar p99 <= 1 ms"
    rows.append(_row("neural model call: torch eager, inference_mode", _us(neural_times["eager"]), note))
    rows.append(
        _row("neural model call: TorchScript (trace + freeze)", _us(neural_times["torchscript"]), note)
    )
    rows.append(
        _row("neural model call: ONNX Runtime (serving path)", _us(neural_times["onnxruntime"]), note)
    )

    fast_gbdt = accelerate(model_load(dirs["gbdt"]), cache_dir=cache)
    fast_neural = accelerate(model_load(dirs["neural"]))
    fast_blend = accelerate(model_load(dirs["blend"]), cache_dir=cache)
    for name, model in (("gbdt", fast_gbdt), ("neural", fast_neural), ("blend", fast_blend)):
        def model_call(r: Any, m: Any = model) -> Any:
            return m.predict(r.user, r.population, now=r.user.now, top=10)

        times = _time_calls(model_call, reads, CALLS)
        rows.append(
            _row(
                f"{name} model.predict on {model.serving_path} (pair inputs + score + top 10)",
                _us(times),
                "read-out given; the pair inputs are Python",
            )
        )

    fastpath = {"cache_dir": cache}
    for chain in (("blend", "neural", "gbdt"), ("neural", "gbdt"), ("gbdt",)):
        predictor = _predictor(dirs, store, chain=chain, fastpath=fastpath)
        served: Counter[str] = Counter()

        def call(user_id: str, p: Any = predictor, served: Counter[str] = served) -> None:
            served[p.predict(user_id, deadline=Deadline(BUDGET_MS), top=10).served_by] += 1

        for user_id in users[:50]:
            call(user_id)
        served.clear()
        times = _time_calls(call, users, CALLS, warm=0)
        rows.append(
            _row(
                f"whole predictor, chain {' -> '.join(chain)} -> prior (memory store read-out + model + answer)",
                _ms(times),
                f"served_by {dict(served)}",
            )
        )
        predictor.stop()
    return rows


def bench_neural_slow() -> list[dict[str, str]]:
    """The neural model slowed to 2x the budget: every answer still comes in time from gbdt."""
    if not MOVIELENS.is_dir():
        return [_row("neural_slow", "skipped", f"{MOVIELENS} not found")]
    _one_thread_math()
    from inference.serving.deadline import Deadline

    dirs = _trained()
    events = _events()
    store = _store(events)
    users = sorted({e.user_id for e in events})
    delay = 2 * BUDGET_MS
    predictor = _predictor(
        dirs,
        store,
        chain=("neural", "gbdt"),
        fastpath={"cache_dir": _bench_var() / "compiled"},
        delay_ms={"neural": delay},
    )
    answers = []
    times = []
    for i in range(CALLS):
        started = time.perf_counter()
        answers.append(predictor.predict(users[i % len(users)], deadline=Deadline(BUDGET_MS), top=10))
        times.append(time.perf_counter() - started)
    predictor.stop()
    served = Counter(a.served_by for a in answers)
    reasons = Counter(str(a.fallback_reason) for a in answers)
    over = sum(1 for a in answers if a.elapsed_ms > BUDGET_MS)
    return [
        _row(
            f"neural slowed to {delay:.0f} ms, budget {BUDGET_MS:.0f} ms: whole predictor in-process",
            _ms(times) + f", max {max(times) * 1e3:.3f} ms",
            f"served_by {dict(served)}; reasons {dict(reasons)}; answers over budget: {over} of {len(answers)}",
        )
    ]


# --- HTTP ----------------------------------------------------------------------------------------------
def _register_models(env: dict[str, str], dirs: dict[str, Path], var_dir: Path) -> None:
    from benchmarks.run import manage

    models = var_dir / "models"
    for name, path in dirs.items():
        shutil.copytree(path, models / f"{name}-bench")
    script = (
        "from inference.registry import services\n"
        "for name in ('gbdt', 'neural'):\n"
        "    services.model_version_register(algorithm=name, version=name + '-bench', artifact_path=name + '-bench')\n"
        "    services.model_version_activate(version=name + '-bench', actor='bench')\n"
    )
    manage(env, "shell", "-c", script)


def _served_by_sample(
    port: int, path: str, headers: dict[str, str], n: int = 300, timeout: float = 10.0
) -> tuple[Counter[str], list[float]]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    served: Counter[str] = Counter()
    server_ms: list[float] = []
    for _ in range(n):
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = json.loads(response.read())
        served[f"{body.get('served_by')}/{body.get('fallback_reason')}"] += 1
        if isinstance(body.get("server_ms", body.get("elapsed_ms")), int | float):
            server_ms.append(float(body.get("server_ms", body.get("elapsed_ms"))))
    conn.close()
    return served, server_ms


def _movielens_users() -> list[str]:
    """The user ids of the MovieLens ratings, in file order of first appearance."""
    import csv

    with (MOVIELENS / "ratings.csv").open(newline="") as handle:
        return list(dict.fromkeys(row["userId"] for row in csv.DictReader(handle)))


def bench_interests_http() -> list[dict[str, str]]:
    if not MOVIELENS.is_dir():
        return [_row("interests_http", "skipped", f"{MOVIELENS} not found")]
    from benchmarks.run import (
        SECONDS,
        bar,
        fresh_state,
        gunicorn,
        load_row,
        manage,
        measured_load,
        served_row,
    )

    dirs = _trained()
    var_dir = _bench_var() / "interests"
    env = fresh_state(var_dir, services=True)
    env["INFERENCE_COMPILED_CACHE_DIR"] = str(_bench_var() / "compiled")
    started = time.perf_counter()
    manage(env, "import_events", "--format", "movielens", str(MOVIELENS), "--no-progress")
    imported = time.perf_counter() - started
    _register_models(env, dirs, var_dir)
    token = manage(env, "create_api_token", "bench").stdout.strip()
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    user = os.environ.get("BENCH_USER", "86")  # the median MovieLens user (70 ratings)
    path = f"/api/v1/users/{user}/interests?top=10"
    every_path = [f"/api/v1/users/{u}/interests?top=10" for u in _movielens_users()]
    rows = [
        _row("interests_http setup: import MovieLens into PostgreSQL + Redis features", f"{imported:.1f} s")
    ]
    results: dict[str, Any] = {}
    slowed_config = str(ROOT / "benchmarks" / "gunicorn_slowed.conf.py")
    for label, extra in (("", {}), (" (neural slowed to 10 ms)", {"BENCH_NEURAL_DELAY_MS": "10"})):
        run_env = {**env, **extra, "PROMETHEUS_MULTIPROC_DIR": str(var_dir / f"prom{len(results)}")}
        Path(run_env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
        with gunicorn(
            run_env,
            workers=2,
            threads=1,
            config=slowed_config if extra else str(ROOT / "scripts" / "gunicorn.conf.py"),
        ) as port:
            # both workers warm (models loaded by gunicorn.conf.py's post_worker_init; slow on a busy host)
            served, _ = _served_by_sample(port, path, headers, n=50, timeout=120)
            api, server = measured_load(
                Path(run_env["PROMETHEUS_MULTIPROC_DIR"]), "user-interests",
                port=port, path=path, headers=headers, clients=8, seconds=SECONDS,
            )
            served, server_ms = _served_by_sample(port, path, headers)
            if not label:
                bare = run_load(port=port, path="/healthz", clients=8, seconds=SECONDS)
                every, every_server = measured_load(
                    Path(run_env["PROMETHEUS_MULTIPROC_DIR"]), "user-interests", port=port, path=path,
                    paths=every_path,
                    headers=headers, clients=8, seconds=SECONDS,
                )
        results[label] = api
        note = f"served_by/reason of 300 sequential requests {dict(served)}"
        if server_ms:
            note += f"; server time p99 {_pct(server_ms)[1]:.2f} ms"
        rows.append(
            load_row(
                f"GET interests of user {user}, gunicorn 2 workers, 8 clients, services mode{label}",
                api,
                note=note,
            )
        )
        rows.append(
            _row(
                f"GET interests, same load{label}, server-side (in the workers)",
                f"p50 {server.p50_ms:.2f} ms, p99 {server.p99_ms:.2f} ms; {server.share_within(5.0):.2%} within 5 ms",
                f"http_request_seconds of {server.count:,} requests; excludes the wait for a free worker",
            )
        )
        rows.append(served_row(f"GET interests, same load{label}, answers by model", server))
        if not label:
            rows.append(load_row("GET /healthz (bare Django JSON view), same server, 8 clients", bare))
            users = f"GET interests of every MovieLens user in turn ({len(every_path)}), same server"
            rows.append(load_row(users, every, note="the bar rows below use user 86"))
            rows.append(
                _row(
                    f"{users}, server-side",
                    f"p50 {every_server.p50_ms:.2f} ms, p99 {every_server.p99_ms:.2f} ms; "
                    f"{every_server.share_within(5.0):.2%} within 5 ms",
                    f"http_request_seconds of {every_server.count:,} requests",
                )
            )
            rows.append(served_row(f"{users}, answers by model", every_server))
            ratio = api.p50_ms / bare.p50_ms if bare.p50_ms else float("inf")
            ok = api.errors == 0 and api.requests > 0
            rows.append(
                bar(
                    "GET interests, 2 workers, 8 clients",
                    "p99 <= 5 ms (issue 4)",
                    f"p99 {api.p99_ms:.1f} ms (p50 {api.p50_ms:.1f} ms, {api.rps:,.0f} req/s)",
                    ok and api.p99_ms <= 5,
                )
            )
            rows.append(
                bar(
                    "GET interests vs GET /healthz (bare Django JSON view), same server and run",
                    "p50 within 2x (issue 4)",
                    f"{ratio:.2f}x (p50 {api.p50_ms:.1f} vs {bare.p50_ms:.1f} ms; {bare.rps:,.0f} req/s bare)",
                    ok and ratio <= 2,
                )
            )
    return rows


SECTIONS: dict[str, Callable[[], list[dict[str, str]]]] = {
    "training": bench_training,
    "predict": bench_predict,
    "neural_slow": bench_neural_slow,
    "interests_http": bench_interests_http,
}
