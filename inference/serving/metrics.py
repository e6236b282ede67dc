"""Prometheus metrics of serving.

Multiprocess-correct under several gunicorn workers when ``PROMETHEUS_MULTIPROC_DIR`` is set before
the process starts (prometheus-client then writes each worker's values to mmap files in that
directory, and ``/metrics`` aggregates them; gunicorn's ``child_exit`` hook must call
``prometheus_client.multiprocess.mark_process_dead(worker.pid)``). Gauges pick a multiprocess mode
that makes sense across workers: the worst breaker state, the versions any live worker serves.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# sub-millisecond buckets: the whole budget is 5 ms
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.1, 1.0)

PREDICT_SECONDS = Histogram(
    "inference_predict_seconds",
    "Interest prediction latency by model and stage (features, model, total).",
    ["model", "stage"],
    buckets=LATENCY_BUCKETS,
)
SERVED_TOTAL = Counter(
    "inference_served_total", "Predictions answered, by the model that served.", ["served_by"]
)
FALLBACKS_TOTAL = Counter(
    "inference_fallbacks_total", "Predictions not served by the first model, by reason.", ["reason"]
)
STORED_READS_TOTAL = Counter(
    "inference_stored_reads_total",
    "Reads with stored answers on: served stored (current), predicted live (none or stale), or the store down.",
    ["outcome"],
)
ANSWERS_RECOMPUTED_TOTAL = Counter(
    "inference_answers_recomputed_total",
    "Stored answers recomputed after a visitor's events (the write side), by the ranker that answered.",
    ["served_by"],
)
MODEL_ERRORS_TOTAL = Counter(
    "inference_model_errors_total",
    "Model calls that raised, returned invalid output or overran.",
    ["model", "kind"],
)
BREAKER_STATE = Gauge(
    "inference_breaker_state",
    "Circuit breaker state per model: 0 closed, 1 half-open, 2 open (worst over live workers).",
    ["model"],
    multiprocess_mode="livemax",
)
MODEL_VERSION_LOADED = Gauge(
    "inference_model_version_loaded",
    "1 for each model version loaded in a live worker.",
    ["model", "version"],
    multiprocess_mode="livemax",
)
MODEL_LOADS_TOTAL = Counter(
    "inference_model_loads_total", "Model version loads, by model and result.", ["model", "result"]
)

# --- shadow mode: a candidate scores a sample of served requests, never served itself ------------
AGREEMENT_BUCKETS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.9, 1.0)

SHADOW_AGREEMENT = Histogram(
    "inference_shadow_agreement",
    "Top-k overlap of the shadow version's categories with the served answer's, per request scored.",
    ["version", "compared_with"],
    buckets=AGREEMENT_BUCKETS,
)
SHADOW_TOP1_MATCH_TOTAL = Counter(
    "inference_shadow_top1_match_total",
    "Shadow-scored requests where the shadow's first category is the served answer's first.",
    ["version", "compared_with"],
)
SHADOW_SECONDS = Histogram(
    "inference_shadow_seconds",
    "Latency of the shadow version's model call.",
    ["version"],
    buckets=LATENCY_BUCKETS,
)
SHADOW_SKIPPED_TOTAL = Counter(
    "inference_shadow_skipped_total",
    "Sampled requests the shadow did not score: no_time (deadline), circuit_open.",
    ["version", "reason"],
)
SHADOW_ERRORS_TOTAL = Counter(
    "inference_shadow_errors_total",
    "Shadow calls that raised, returned invalid output or overran (counted, never raised).",
    ["version", "kind"],
)
SHADOW_LOADED = Gauge(
    "inference_shadow_loaded",
    "1 for the shadow version loaded in a live worker.",
    ["version"],
    multiprocess_mode="livemax",
)
