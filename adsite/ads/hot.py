"""The decisions request's hot path: ``POST /api/v1/ads/decisions`` answered for the server's hot route
(``adsite.ops.hot_routes``), before Django's handler.

Most decisions come from a service client whose token this process remembers, with a body the published schema
accepts (``decision_input_fast``), no explanation asked for and placements the site has. For those,
``decisions_answer`` does what the view does (``views.DecisionsView``: the same ``api_decision``, the same
JSON) without Django's request, middleware, URL resolution and DRF's dispatch. Every other request returns
None here and gets the view's own answer: a missing or unknown token (401), a body the schema refuses (the
serializer's worded 400), ``explain`` (a staff check, 403 otherwise), an unknown placement (400). The decisions
API has no rate limit of its own; when it gets one, this path must apply it as ``inference.rest.hot`` does.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from adsite.ads.decision_input import decision_input_fast, placements_unknown
from adsite.ads.delivery import api_decision
from inference.api import api_client_remembered

__all__ = ["decisions_answer"]


def decisions_answer(authorization: str, body: bytes, *, absolute: Callable[[str], str]) -> bytes | None:
    """The JSON answer to a common decisions request, or None: the view answers this one (module docstring)."""
    if api_client_remembered(authorization) is None:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    values = decision_input_fast(data)
    if values is None or values["explain"] or placements_unknown(values["placements"]):
        return None
    return orjson.dumps(api_decision(values, absolute=absolute))
