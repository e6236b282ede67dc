"""gunicorn settings for scripts/serve.sh.

With several workers, Prometheus metrics are aggregated through PROMETHEUS_MULTIPROC_DIR (emptied at
start by serve.sh); a worker that exits has its live gauges dropped here.
"""

import os


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):  # noqa: ANN001, ANN201
    # Build and warm this worker's predictor (torch import, model loads) before it takes traffic,
    # so no visitor pays ~2 s on a worker's first request.
    try:
        from inference.api import serving_status

        serving_status()
    except Exception:  # a worker that cannot warm up still serves (degraded answers say why)
        worker.log.exception("adsite: predictor warm-up failed")
