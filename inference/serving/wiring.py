"""How this process's predictor is assembled from the real parts: the registry, the online feature
store (features helper), the model loader and the prior (models helper).

Kept apart from ``predictor`` so that the chain logic is tested with doubles and this module only
adapts names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from inference.conf import inference_setting
from inference.serving.predictor import (
    ActiveVersionLike,
    ModelLoader,
    Predictor,
    PredictorConfig,
    ShadowVersionLike,
)
from inference.serving.stored import StoredAnswers

logger = logging.getLogger(__name__)


def registry_active_versions() -> Mapping[str, ActiveVersionLike]:
    """The registry poll: one cheap query."""
    from django.db import close_old_connections, connection

    from inference.registry.selectors import active_model_versions

    # the polling thread keeps its own connection; recycle it when stale (CONN_MAX_AGE, health checks),
    # but never inside a transaction (a caller's, or a test's)
    if not connection.in_atomic_block:
        close_old_connections()
    return active_model_versions()  # type: ignore[return-value]  # ActiveVersion satisfies the protocol


def registry_shadow_version() -> ShadowVersionLike | None:
    """The shadow config, read on the same poll right after the active versions (one cheap query)."""
    from inference.registry.selectors import shadow_version

    return shadow_version()


def predictor_config() -> PredictorConfig:
    return PredictorConfig(
        failure_threshold=int(inference_setting("BREAKER_FAILURES")),
        cooldown_s=float(inference_setting("BREAKER_COOLDOWN_S")),
        latency_window=int(inference_setting("LATENCY_WINDOW")),
        latency_max_age_s=float(inference_setting("LATENCY_MAX_AGE_S")),
        poll_seconds=float(inference_setting("RELOAD_POLL_SECONDS")),
        probe_seconds=float(inference_setting("LATENCY_PROBE_SECONDS")),
    )


def fastpath_options() -> dict[str, Any]:
    """Keyword arguments of ``fastpath.accelerate`` from the settings (per loaded model)."""
    device = str(inference_setting("SERVING_DEVICE"))
    if device == "auto":
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            device = "cpu"
    cache = str(inference_setting("COMPILED_CACHE_DIR") or "")
    return {
        "device": device,
        "compiled": bool(inference_setting("FASTPATH")),
        # an activated gbdt serves through its booster while LLVM compiles it (seconds): never wait for it
        "background": True,
        "cache_dir": Path(cache) if cache else None,
        "batch": {
            "max_batch": int(inference_setting("BATCH_MAX")),
            "max_wait_ms": float(inference_setting("BATCH_WAIT_MS")),
            "max_queue": int(inference_setting("BATCH_QUEUE")),
            "timeout_ms": float(inference_setting("BUDGET_MS")),
        },
    }


def predictor_build(*, loader_wrap: Callable[[ModelLoader], ModelLoader] | None = None) -> Predictor:
    """The predictor for this process, wired to the configured feature store and the model code.
    ``loader_wrap`` (benchmarks: a model slowed on purpose) wraps the model loader; the site passes none."""
    from inference.serving.adapters import ModelLoaderAdapter, PriorAdapter, StoreAdapter

    store = StoreAdapter.from_settings()
    loader: ModelLoader = ModelLoaderAdapter(fastpath=fastpath_options(), on_loaded=store.model_loaded)
    return Predictor(
        answers=stored_answers(),
        features=store,
        prior=PriorAdapter(store),
        loader=loader_wrap(loader) if loader_wrap is not None else loader,
        registry_reader=registry_active_versions,
        config=predictor_config(),
        shadow_reader=registry_shadow_version,
        poll_thread_exit=_thread_connections_close,
        poll_thread_after_poll=_thread_query_log_reset,
        poll_thread_start=_model_code_import,
    )


def stored_answers() -> StoredAnswers | None:
    """The stored answers of the configured store, if ``INFERENCE["ANSWERS_ON_WRITE"]`` and it keeps them."""
    if not inference_setting("ANSWERS_ON_WRITE"):
        return None
    from inference.store import feature_store

    store = feature_store()
    if not hasattr(store, "answer_read"):  # the in-process store: reads are live and cost no round trip
        return None
    return StoredAnswers(
        store,  # type: ignore[arg-type]  # the Redis store satisfies AnswerStore
        max_age_s=float(inference_setting("ANSWERS_MAX_AGE_S")),
        top=int(inference_setting("ANSWERS_TOP")),
        debounce_s=float(inference_setting("ANSWERS_DEBOUNCE_S")),
    )


def _model_code_import() -> None:
    """Import what loading a learned model needs (LightGBM, the fast paths' lleaves and ONNX Runtime) in the
    poll thread as the process starts. Otherwise the first activation of a gbdt in a process that served
    none imported LightGBM inside the poll, before the swap: 14 s of a 2-core machine at load 16, measured
    in the scale-out rehearsal as most of the 33-35 s from activation to both web hosts serving. A process
    that serves a model imports all this anyway."""
    import importlib

    modules = ["inference.models.gbdt", "inference.models.neural"]
    if inference_setting("FASTPATH"):
        modules += ["lleaves", "onnxruntime"]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:  # an optional fast path missing: the load falls back and says so
            logger.info("inference.model_code_missing %s: %r", module, exc)


def _thread_connections_close() -> None:
    """The polling thread's own database connection, closed when the predictor stops."""
    from django.db import connections

    connections.close_all()


def _thread_query_log_reset() -> None:
    """With ``DJANGO_DEBUG=1`` (as ``make run`` serves) Django keeps every query's SQL on the connection,
    up to 9,000, and only a request's start resets it, on the request's own thread: the polling thread's
    connection (two queries every ``RELOAD_POLL_SECONDS``, in every web and worker process) kept them all,
    several MiB of SQL text in a few hours. Emptied after each poll, as Django does for each request."""
    from django.conf import settings

    if settings.DEBUG:
        from django.db import reset_queries

        reset_queries()  # this thread's connections only
