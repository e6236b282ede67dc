"""gunicorn settings, kept for the benchmarks' before/after comparison (``make run`` serves with granian:
scripts/serve.sh, adsite/rsgi.py).

With several workers, Prometheus metrics are aggregated through PROMETHEUS_MULTIPROC_DIR (emptied at
start by serve.sh); a worker that exits has its live gauges dropped here.

Worker type: services mode runs sync workers (serve.sh passes ``--workers`` and no ``--threads``), one
request at a time per process. Measured on this 2-core host with wrk (docs/benchmarks.md): gthread with
2 threads per worker served the bare ``/healthz`` view 1.5-1.8x faster (keep-alive, no reconnects) but
the interests endpoint at half the rate with p99 1.7-25x worse, as a worker's threads contend for the
GIL and the models' latencies pass the budget. Sync workers close the connection after each response,
so ``keepalive`` does not apply to them. Embedded mode needs threads (one process holds the in-process
state) and gets gthread.
"""

import os

# gunicorn 25+ opens a control socket at one fixed path per user (~/.gunicorn/gunicorn.ctl), so two servers on
# one host (make run beside the benchmarks' servers) would take it from each other; nothing here uses it
control_socket_disable = True


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):  # noqa: ANN001, ANN201
    # The predictor built and warm, the start-up heap frozen (adsite/ops/warmup.py), before any traffic.
    from adsite.ops.warmup import web_process_warm

    web_process_warm()
    # Embedded mode has no Celery beat: the dashboard's rollups (metrics snapshots, traffic minutes,
    # site analytics) run on a thread of the one web process from start-up, not on page views.
    try:
        from django.conf import settings

        if settings.ADSITE_MODE == "embedded" and (getattr(settings, "DASHBOARD", {}) or {}).get("ROLLUP_THREAD"):
            from adsite.dashboard.rollup import rollup_thread_start

            rollup_thread_start()
    except Exception:
        worker.log.exception("adsite: dashboard rollup thread failed to start")
