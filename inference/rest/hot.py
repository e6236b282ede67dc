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

__all__ = ["THROTTLED_WAIT", "interests_answer", "interests_body", "interests_hot", "throttle_wait"]

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


def interests_hot(
    authorization: str, user_id: str, top_values: list[str], *, throttle: type[FixedWindowUserRateThrottle]
) -> tuple[Any, Interests | float] | None:
    """The common interests request's work, from the raw ``Authorization`` header, path id and ``top`` query
    values: ``(user, Interests)``, or ``(user, seconds to wait)`` for a remembered client over its rate (the hit
    counted once), or None when DRF's dispatch must answer (module docstring). Shared by the Django view's hot
    path and the server's (``adsite.ops.hot_routes``), so both answer alike."""
    from inference.api import predict_interests

    client = CachedTokenAuthentication.remembered(authorization)
    if client is None:
        return None
    user, token = client
    try:
        user_id = user_id_parse(user_id)
        top = top_parse_query(top_values)
    except BadParameter:
        return None
    wait = throttle_wait(throttle, user, token)
    if wait is not None:
        return user, wait
    return user, predict_interests(user_id, deadline=Deadline.from_settings(), top=top)


def throttle_wait(throttle: type[FixedWindowUserRateThrottle], user: Any, token: Any) -> float | None:
    """Count one request of an authenticated client against ``throttle`` (its class and counter, as DRF's
    check would): None when it is under its rate, else the seconds to wait."""
    limiter = throttle()
    if limiter.allow_request(_Client(user, token), None):  # type: ignore[arg-type]
        return None
    return limiter.wait()


def interests_body(interests: Interests) -> tuple[bytes, str]:
    """The answer's JSON bytes and its ``Server-Timing`` header."""
    return orjson.dumps(interests.as_dict()), server_timing(interests, interests.elapsed_ms)


def interests_answer(
    request: HttpRequest, user_id: str, *, throttle: type[FixedWindowUserRateThrottle], allow: str
) -> HttpResponse | None:
    """The answer to a common interests request, or None: DRF's dispatch answers this one (module docstring)."""
    from inference.api import THROTTLED_WAIT_ENVIRON

    waited = request.META.get(THROTTLED_WAIT_ENVIRON)
    if waited is not None:  # the server's hot route counted this hit already and found the client over its rate
        setattr(request, THROTTLED_WAIT, float(waited))
        return None
    hot = interests_hot(request.META.get("HTTP_AUTHORIZATION", ""), user_id, request.GET.getlist("top"),
                        throttle=throttle)
    if hot is None:
        return None
    user, interests = hot
    if not isinstance(interests, Interests):
        # DRF answers the 429 from this verdict (the view's check_throttles), without counting the hit twice
        setattr(request, THROTTLED_WAIT, interests)
        return None
    request.user = user  # as DRF sets it on the underlying request: later middleware sees the client
    body, timing = interests_body(interests)
    response = HttpResponse(body, content_type="application/json")
    response["Server-Timing"] = timing
    response["Allow"] = allow
    return response
