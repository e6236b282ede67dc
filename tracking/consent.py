"""Whether this request may be tracked at all: Do Not Track, Global Privacy Control, consent.

One decision, used by ``/collect``, the server-side page view and the identity cookie:
a request carrying ``DNT: 1`` or ``Sec-GPC: 1`` is never tracked; when
``TRACKING["CONSENT_REQUIRED"]`` is on, only a request with the cookie ``adsite_consent=granted`` is.
"""

from __future__ import annotations

from django.http import HttpRequest

from tracking.conf import tracking_settings

DO_NOT_TRACK = "do_not_track"
GLOBAL_PRIVACY_CONTROL = "global_privacy_control"
NO_CONSENT = "no_consent"
PRIVACY_REFUSALS = (DO_NOT_TRACK, GLOBAL_PRIVACY_CONTROL, NO_CONSENT)


def tracking_refusal(request: HttpRequest) -> str | None:
    """Why this request must not be tracked (``do_not_track``, ``global_privacy_control``,
    ``no_consent``), or ``None`` when it may be."""
    if request.META.get("HTTP_SEC_GPC", "").strip() == "1":
        return GLOBAL_PRIVACY_CONTROL
    if request.META.get("HTTP_DNT", "").strip() == "1":
        return DO_NOT_TRACK
    conf = tracking_settings()
    if conf.CONSENT_REQUIRED and request.COOKIES.get(conf.CONSENT_COOKIE) != "granted":
        return NO_CONSENT
    return None


def tracking_allowed(request: HttpRequest) -> bool:
    """True when the request may be recorded (no DNT, no GPC, consent given where required)."""
    return tracking_refusal(request) is None


EDGE_MODES = ("off", "private", "all")


def edge_mode() -> str:
    """The site's edge mode setting (``off``, ``private`` or ``all``)."""
    mode = str(tracking_settings().EDGE_MODE)
    if mode not in EDGE_MODES:
        raise ValueError(f"TRACKING['EDGE_MODE'] is {mode!r}: use one of {EDGE_MODES}")
    return mode


def edge_mode_for(request: HttpRequest) -> bool:
    """True when this visitor's profile lives on their device (no clickstream reaches the server):
    every visitor in ``all`` mode; in ``private`` mode those who send DNT or GPC."""
    mode = edge_mode()
    if mode == "all":
        return True
    return mode == "private" and tracking_refusal(request) in (DO_NOT_TRACK, GLOBAL_PRIVACY_CONTROL)
