"""How much one client may make the site keep in quarantine: a byte and row budget per address and window.

Quarantine keeps what could not be read as events, so that a broken sender can be diagnosed; without a
bound, an anonymous client sending garbage makes the site store whatever it sends (a probe grew the
table by 9 MB in 7 s). Each anonymous sender (``/collect``: the truncated address, a /24 or /48, the
same one the site stores) has ``QUARANTINE_BUDGET_BYTES`` payload bytes and ``QUARANTINE_BUDGET_ROWS``
rows per ``QUARANTINE_BUDGET_WINDOW_S`` (a fixed window). A request that would quarantine more once the
budget is spent is answered 429 with ``Retry-After`` (the rest of the window) and stores nothing, not
even its valid events (the tracker retries the whole batch, so nothing is lost; a batch without
rejected events is never refused). Server-to-server ``/api/v1/events`` (token holders) is not bounded here.

The counters live in Django's cache (Redis in services mode, shared by every process; in-process in
embedded mode, which serves from one process). An unreachable cache lets the request through: the
budget protects storage, it must not turn a Redis outage into refused events.
``quarantine_budget_charge`` is the one entry point, so a site-wide limiter can take its place.
"""

from __future__ import annotations

import logging
import time

from tracking.conf import tracking_settings

logger = logging.getLogger(__name__)


def _prefix(client: str, start: int) -> str:
    return f"adsite:qbudget:{client or '-'}:{start}"


def quarantine_budget_reset(*, client: str) -> None:
    """Give ``client`` its whole budget again for the current window (staff action, tests)."""
    from django.core.cache import cache

    window = max(1, int(tracking_settings().QUARANTINE_BUDGET_WINDOW_S))
    start = int(time.time() // window) * window
    cache.delete_many([f"{_prefix(client, start)}:b", f"{_prefix(client, start)}:r"])


def quarantine_budget_charge(*, client: str, rows: int, payload_bytes: int) -> float | None:
    """Charge ``rows`` / ``payload_bytes`` to ``client``'s budget; return the seconds to wait if spent.

    ``None``: within budget (charged). A number: over budget, nothing should be stored; the sender may
    retry after that many seconds.
    """
    conf = tracking_settings()
    window = max(1, int(conf.QUARANTINE_BUDGET_WINDOW_S))
    max_bytes, max_rows = int(conf.QUARANTINE_BUDGET_BYTES), int(conf.QUARANTINE_BUDGET_ROWS)
    if max_bytes <= 0 and max_rows <= 0:
        return None
    from django.core.cache import cache

    now = time.time()
    start = int(now // window) * window
    prefix = _prefix(client, start)
    try:
        cache.add(f"{prefix}:b", 0, timeout=window + 5)
        cache.add(f"{prefix}:r", 0, timeout=window + 5)
        used_bytes = int(cache.incr(f"{prefix}:b", payload_bytes))
        used_rows = int(cache.incr(f"{prefix}:r", rows))
    except Exception as exc:  # the cache is down: protect the events, not the budget
        logger.warning("tracking.quarantine_budget_unavailable: %s", type(exc).__name__)
        return None
    # the counters were charged first (atomic across processes); a request that crosses the limit is
    # refused whole, so a client that stops sending garbage gets its next window in full
    if (max_bytes > 0 and used_bytes > max_bytes) or (max_rows > 0 and used_rows > max_rows):
        logger.warning(
            "tracking.quarantine_budget_spent client=%s: %d bytes / %d rows this window; answering 429",
            client or "-", used_bytes, used_rows,
        )
        return max(1.0, start + window - now)
    return None
