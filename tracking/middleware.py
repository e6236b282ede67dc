"""Sets the visitor's ``adsite_uid`` cookie on HTML responses, when tracking is allowed.

Only when the browser lacks the cookie (or holds an implausible one); never for a request with DNT,
GPC or missing required consent.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tracking.conf import tracking_settings
from tracking.consent import tracking_allowed
from tracking.identity import visitor_id, visitor_id_from_cookie


class IdentityCookieMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not response.get("Content-Type", "").startswith("text/html"):
            return response
        if visitor_id_from_cookie(request) or not tracking_allowed(request):
            return response
        conf = tracking_settings()
        response.set_cookie(
            conf.UID_COOKIE,
            visitor_id(request),
            max_age=conf.UID_COOKIE_MAX_AGE,
            samesite="Lax",
            httponly=False,
            secure=request.is_secure(),
        )
        return response
