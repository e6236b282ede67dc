"""The first-party anonymous visitor id (cookie ``adsite_uid``), shared with ``tracker.js``.

The server mints the id when the browser has none and the identity middleware sets the cookie on HTML
responses (1 year, ``SameSite=Lax``, readable by ``tracker.js``, so not HttpOnly). A cookie value that
is not a plausible id is replaced, never trusted.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest

from inference.api import user_id_valid
from tracking.conf import tracking_settings

_REQUEST_ATTR = "_adsite_visitor_id"


def visitor_id_from_cookie(request: HttpRequest) -> str:
    """The visitor id the request's cookie carries, or ``""``."""
    value = request.COOKIES.get(tracking_settings().UID_COOKIE, "")
    return value if user_id_valid(value) else ""


def visitor_id(request: HttpRequest) -> str:
    """The visitor's id: from the cookie, or a freshly minted one (stable for the rest of the request)."""
    minted = getattr(request, _REQUEST_ATTR, None)
    if minted:
        return minted
    value = visitor_id_from_cookie(request) or str(uuid.uuid4())
    setattr(request, _REQUEST_ATTR, value)
    return value
