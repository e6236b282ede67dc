"""What a web process does once, before it takes traffic: granian's ``__rsgi_init__`` (``adsite/rsgi.py``) and
gunicorn's ``post_worker_init`` (``scripts/gunicorn.conf.py``) both call ``web_process_warm``.

1. Build and warm the predictor (the torch import, the active models loaded), so that no visitor pays for it
   on a process's first request.
2. Take what start-up allocated out of the garbage collector's reach (``gc.freeze``). A warm process holds
   about 400,000 tracked objects (Django, DRF, torch, the models) that live as long as it does; CPython's full
   collection walks all of them, about 160 ms on this project's 2-core host, once every few thousand requests,
   and every request queued on that process waits for it (the tail of ``POST /api/v1/ads/decisions`` under
   load: docs/benchmarks.md). Frozen, they are never scanned; a full collection walks only what was
   allocated since (about 6 ms). Frozen objects are still freed by reference counting (a model replaced by a
   hot reload goes as before); only garbage cycles among them would stay, and start-up leaves none, since a
   collection runs first.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["web_process_warm"]


def web_process_warm() -> None:
    try:
        from inference.api import serving_status

        serving_status()
    except Exception:  # a process that cannot warm up still serves (degraded answers say why)
        logging.getLogger("adsite.server").exception("adsite: predictor warm-up failed")
    gc.collect()
    gc.freeze()
