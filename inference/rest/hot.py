"""The single-user interests request's hot path, answered without DRF's request machinery.

Most calls of ``GET /api/v1/users/{user_id}/interests`` come from a service client whose token this process
remembers (``authentication.CachedTokenAuthentication``), with valid parameters, under its rate. For those,
``interests_answer`` does what DRF's dispatch would do, once each: the remembered token (permission: a token
client is always allowed), the rate limit (the same throttle class and counter), the one parse of the path and
query, the prediction, and the same JSON bytes (orjson), ``Allow`` and ``Server-Timing`` headers; it skips
wrapping the request, content negotiation, the permission and throttle loops and the response renderer.

Every other request returns ``None`` here and goes through DRF's full dispatch, so a missing, unknown or
malformed token, a staff session, a bad parameter, a client over its rate or another method gets DRF's own
answer (status, body, ``WWW-Authenticate``, ``Retry-After``) exactly as before; a client the hot path found
over its rate is refused by DRF from that verdict (``THROTTLED_WAIT``), its hit counted once.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse

from inference.rest.authentication import CachedTokenAuthentication
from inference.rest.parameters import BadParameter, top_parse_query, user_id_parse
from inference.rest.throttling import FixedWindowUserRateThrottle
from inference.serving.deadline import Deadline
from inference.serving.interests import Interests

__all__ = ["THROTTLED_WAIT", "interests_answer"]

# the request attribute holding the hot path's throttle verdict (seconds to wait) for DRF's dispatch
THROTTLED_WAIT = "interests_throttled_wait"


class _Client:
    """What the throttle reads of a DRF request: the authenticated user (its key is the user's pk)."""

    __slots__ = ("user", "auth")

    def __init__(self, user: Any, auth: Any) -> None:
        self.user = user
        self.auth = auth


def server_timing(interests: Interests, total_ms: float) -> str:
    parts = [f"{stage};dur={ms:.3f}" for stage, ms in interests.stage_ms]
    parts.append(f'total;dur={total_ms:.3f};desc="{interests.served_by}"')
    return ", ".join(parts)


def interests_answer(
    request: HttpRequest, user_id: str, *, throttle: type[FixedWindowUserRateThrottle], allow: str
) -> HttpResponse | None:
    """The answer to a common interests request, or None: DRF's dispatch answers this one (module docstring)."""
    from inference.api import predict_interests

    client = CachedTokenAuthentication.remembered(request.META.get("HTTP_AUTHORIZATION", ""))
    if client is None:
        return None
    user, token = client
    try:
        user_id = user_id_parse(user_id)
        top = top_parse_query(request.GET.getlist("top"))
    except BadParameter:
        return None
    limiter = throttle()
    if not limiter.allow_request(_Client(user, token), None):  # type: ignore[arg-type]
        # DRF answers the 429 from this verdict (the view's check_throttles), without counting the hit twice
        setattr(request, THROTTLED_WAIT, limiter.wait())
        return None
    request.user = user  # as DRF sets it on the underlying request: later middleware sees the client
    interests = predict_interests(user_id, deadline=Deadline.from_settings(), top=top)
    response = HttpResponse(orjson.dumps(interests.as_dict()), content_type="application/json")
    response["Server-Timing"] = server_timing(interests, interests.elapsed_ms)
    response["Allow"] = allow
    return response
