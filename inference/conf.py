"""Inference settings: defaults here, overrides from ``settings.INFERENCE`` (which reads the environment).

``inference_setting("BUDGET_MS")`` is the one accessor; nothing in ``inference`` reads ``os.environ``.
Keys are shared by the features, models, training and serving parts of the app.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # prediction budget per request, milliseconds (the Deadline created at the edge)
    "BUDGET_MS": 5.0,
    # "redis" in services mode, "memory" in embedded mode
    "STORE": "memory",
    # feature store: Redis socket timeouts (reads are on the request path; a batch write may be larger),
    # how long a process reuses the population read-out, and the idle TTL of a user's keys (0: none; the
    # default matches tracking's event retention: a visitor idle that long has no events left either)
    "STORE_READ_TIMEOUT_S": 0.05,
    "STORE_WRITE_TIMEOUT_S": 2.0,
    "STORE_POPULATION_CACHE_S": 1.0,
    "STORE_TTL_S": 395 * 86400.0,
    # embedded mode: rebuild the in-process store from the stored events when a process first needs it
    "STORE_REBUILD_ON_START": False,
    # model artifacts live under MODEL_DIR/<version>/ (shared storage when scaled out)
    "MODEL_DIR": "var/models",
    # torch device for training: "auto" (CUDA when present), "cpu", "cuda"
    "DEVICE": "auto",
    # scheduled retraining period in seconds; 0 disables the beat entry
    "RETRAIN_SECONDS": 0.0,
    # where training runs: "local" (this process) or "dask" (inference.training.cluster); the Dask
    # scheduler address ("" = a LocalCluster sized to this machine) and the shard directory ("" = temp)
    "TRAINING_ENGINE": "local",
    "TRAINING_SCHEDULER": "",
    "TRAINING_SHARD_DIR": "",
    # how often each web process checks the registry for a newly activated version (seconds)
    "RELOAD_POLL_SECONDS": 2.0,
    # the share of events (by time) held out as the later evaluation slice in training
    "EVAL_FRACTION": 0.2,
    # an activated model is trained again on every event (the slice included) before it is saved, so the
    # served model has seen the latest behaviour; its metrics stay those of the copy judged on the slice
    "REFIT_ON_ALL": True,
    # training also builds the blend of the active neural and gbdt versions (the mean of their calibrated
    # probabilities, inference.models.blend), judged and activated by the same rule as they are
    "BLEND": True,
    # label horizon (next H events) for training and evaluation
    "HORIZON": 10,
    # circuit breaker: consecutive failures (errors or overruns) that open it, and its cooldown
    "BREAKER_FAILURES": 5,
    "BREAKER_COOLDOWN_S": 5.0,
    # sliding window of recent latencies per model used for the p99 estimate
    "LATENCY_WINDOW": 256,
    # ...and only the samples of the last this many seconds (a model skipped for its p99 comes back once a
    # burst of slow calls is this old), the newest always kept; the web process's poll thread times each
    # model no request called for LATENCY_PROBE_SECONDS, so a slow one keeps fresh (slow) samples
    "LATENCY_MAX_AGE_S": 1.0,
    "LATENCY_PROBE_SECONDS": 0.5,
    # per-algorithm hyperparameter overrides for scheduled/command training, e.g. {"gbdt": {"max_rounds": 200}}
    "HYPERPARAMETERS": {},
    # serving fast paths (inference/serving/fastpath.py): lleaves for gbdt, ONNX Runtime for neural on CPU
    "FASTPATH": True,
    # serving device for the neural model: "auto" (CUDA when present: resident and micro-batched), "cpu"
    "SERVING_DEVICE": "auto",
    # private local directory for compiled boosters, mode 0700, checked before loading ("" = <system
    # temp>/adsite-compiled-<uid>; the site sets var/compiled)
    "COMPILED_CACHE_DIR": "",
    # GPU micro-batching: most requests per batch, longest wait of the first one (ms), queue bound
    "BATCH_MAX": 64,
    "BATCH_WAIT_MS": 1.0,
    "BATCH_QUEUE": 256,
    # answers kept fresh on write (inference/serving/stored.py; the Redis store only): a visitor's events
    # enqueue a recompute this long after the first of them, a stored answer is served while current and
    # at most ANSWERS_MAX_AGE_S old, with up to ANSWERS_TOP categories
    "ANSWERS_ON_WRITE": False,
    "ANSWERS_DEBOUNCE_S": 0.5,
    "ANSWERS_MAX_AGE_S": 300.0,
    "ANSWERS_TOP": 100,
    # the recompute's prediction budget: no visitor waits for it, so the chain's first model has time
    "ANSWERS_BUDGET_MS": 50.0,
    # benchmarks and tests only: every neural model call sleeps this long (ms) first
}


def inference_setting(name: str) -> Any:
    """The value of one inference setting: ``settings.INFERENCE[name]`` or the default."""
    configured = getattr(settings, "INFERENCE", {}) or {}
    if name in configured:
        return configured[name]
    return DEFAULTS[name]
