"""The first-party anonymous visitor id (cookie ``adsite_uid``), shared with ``tracker.js``.

The server mints the id when the browser has none and the identity middleware sets the cookie on HTML
responses (1 year, ``SameSite=Lax``, readable by ``tracker.js``, so not HttpOnly). A cookie value that
is not a plausible id is replaced, never trusted.
"""

from __future__ import annotations

import re
import uuid

from django.http import HttpRequest

from tracking.conf import tracking_settings

_REQUEST_ATTR = "_adsite_visitor_id"
# what this site mints (UUIDs) and what tracker.js keeps: stricter than the events' user id rule
# (``inference.api.user_id_valid``), since anything else in the cookie was not set by us
_COOKIE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def visitor_id_from_cookie(request: HttpRequest) -> str:
    """The visitor id the request's cookie carries, or ``""``."""
    value = request.COOKIES.get(tracking_settings().UID_COOKIE, "")
    return value if _COOKIE_ID.fullmatch(value) else ""


def visitor_id(request: HttpRequest) -> str:
    """The visitor's id: from the cookie, or a freshly minted one (stable for the rest of the request)."""
    minted = getattr(request, _REQUEST_ATTR, None)
    if minted:
        return minted
    value = visitor_id_from_cookie(request) or str(uuid.uuid4())
    setattr(request, _REQUEST_ATTR, value)
    return value
