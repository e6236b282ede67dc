"""How much one client may make the site keep in quarantine: a byte and row budget per address and window.

Quarantine keeps what could not be read as events, so that a broken sender can be diagnosed; without a
bound, an anonymous client sending garbage makes the site store whatever it sends (a probe grew the
table by 9 MB in 7 s). Each anonymous sender (``/collect``: the truncated address, a /24 or /48, the
same one the site stores) has ``QUARANTINE_BUDGET_BYTES`` payload bytes and ``QUARANTINE_BUDGET_ROWS``
rows per ``QUARANTINE_BUDGET_WINDOW_S`` (a fixed window). A request that would quarantine more once the
budget is spent is answered 429 with ``Retry-After`` (the rest of the window) and stores nothing, not
even its valid events (the tracker retries the whole batch, so nothing is lost; a batch without
rejected events is never refused). Server-to-server ``/api/v1/events`` (token holders) is not bounded here.

The counting is the site's one limiter, ``inference.api.window_hit``, with the rows and bytes as the
hit's weight: Redis in services mode (shared by every process, one round trip on the fail-fast guarded
client), in-process in embedded mode. While Redis is away the window is counted in each process, so the
budget still holds per web process: the bound on storage survives a Redis outage, and no event is
refused because Redis is down.
"""

from __future__ import annotations

import logging

from inference.api import window_hit
from tracking.conf import tracking_settings

logger = logging.getLogger(__name__)


def quarantine_budget_charge(*, client: str, rows: int, payload_bytes: int) -> float | None:
    """Charge ``rows`` / ``payload_bytes`` to ``client``'s budget; return the seconds to wait if spent.

    ``None``: within budget (charged). A number: over budget, nothing should be stored; the sender may
    retry after that many seconds. Both counters are charged either way (a request that crosses a limit
    is refused whole), so a client that keeps sending garbage stays refused until the window ends.
    """
    conf = tracking_settings()
    window = max(1, int(conf.QUARANTINE_BUDGET_WINDOW_S))
    max_bytes, max_rows = int(conf.QUARANTINE_BUDGET_BYTES), int(conf.QUARANTINE_BUDGET_ROWS)
    key = f"qbudget:{client or '-'}"
    wait = 0.0
    if max_bytes > 0:
        wait = window_hit(f"{key}:b", limit=max_bytes, period_s=window, cost=max(0, payload_bytes))
    if max_rows > 0:
        wait = max(wait, window_hit(f"{key}:r", limit=max_rows, period_s=window, cost=max(0, rows)))
    if not wait:
        return None
    logger.warning("tracking.quarantine_budget_spent client=%s: answering 429 for %.0f s", client or "-", wait)
    return max(1.0, wait)
