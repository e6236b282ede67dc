"""scripts/gunicorn.conf.py, with each worker's predictor slowed (``benchmarks.slowed``) before it warms up."""

import runpy
from pathlib import Path

_site = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "gunicorn.conf.py"))
control_socket_disable = _site["control_socket_disable"]
child_exit = _site["child_exit"]


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    from benchmarks.slowed import predictor_slowed_install

    predictor_slowed_install()
    _site["post_worker_init"](worker)
