"""The decisions request's hot path: ``POST /api/v1/ads/decisions`` answered for the server's hot route
(``adsite.ops.hot_routes``), before Django's handler.

Most decisions come from a service client whose token this process remembers, with a body the published schema
accepts (``decision_input_fast``), no explanation asked for and placements the site has. For those,
``decisions_answer`` does what the view does (``views.DecisionsView``: the same ``api_decision``, the same
JSON) without Django's request, middleware, URL resolution and DRF's dispatch. Every other request returns
None here and gets the view's own answer: a missing or unknown token (401), a body the schema refuses (the
serializer's worded 400), ``explain`` (a staff check, 403 otherwise), an unknown placement (400). A client over
its rate (``DECISIONS_THROTTLE``, counted here once) is handed to the view with the verdict in the environ, so
the 429 is DRF's own.
"""

from __future__ import annotations

from typing import Any

import orjson

from adsite.ads.decision_input import decision_input_fast, placements_unknown
from adsite.ads.delivery import api_decision, url_absolute
from inference.api import (
    THROTTLED_WAIT_ENVIRON,
    api_client_remembered,
    api_client_throttled,
    api_rate_throttle,
)

__all__ = ["DECISIONS_THROTTLE", "decisions_answer"]

# each API client's decisions per window (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["decisions"]): the view's too
DECISIONS_THROTTLE = api_rate_throttle("decisions")


def decisions_answer(
    authorization: str, body: bytes, *, origin: str, page: str, environ: dict[str, Any]
) -> bytes | None:
    """The JSON answer to a common decisions request, or None: the view answers this one (module docstring).
    Links are made absolute as the view makes them (``origin``: scheme and host; ``page``: the request's
    absolute URL); ``environ`` receives the throttle's verdict for a client over its rate."""
    if api_client_remembered(authorization) is None:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    values = decision_input_fast(data)
    if values is None or values["explain"] or placements_unknown(values["placements"]):
        return None
    wait = api_client_throttled(authorization, DECISIONS_THROTTLE)
    if wait is not None:
        environ[THROTTLED_WAIT_ENVIRON] = wait
        return None
    return orjson.dumps(api_decision(values, absolute=lambda location: url_absolute(location, origin=origin, page=page)))
