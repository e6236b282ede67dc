"""Signed click and impression links.

A token is ``django.core.signing`` output (HMAC with SECRET_KEY, timestamped) of the served
impression's id, creative, campaign, placement and visitor. It names the creative, never a URL: the
redirect target is always looked up from the creative's stored landing URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signing

CLICK_SALT = "adsite.ads.click"
VIEW_SALT = "adsite.ads.view"

VALID = "valid"
FORGED = "forged"
EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class AdToken:
    serve_id: str
    creative_id: int
    campaign_id: int
    placement: str
    user_id: str


def token_make(*, token: AdToken, salt: str = CLICK_SALT) -> str:
    payload = {"s": token.serve_id, "c": token.creative_id, "k": token.campaign_id, "p": token.placement, "u": token.user_id}
    return signing.dumps(payload, salt=salt, compress=True)


def token_read(value: str, *, max_age_s: int, salt: str = CLICK_SALT) -> tuple[str, AdToken | None]:
    """(``valid`` | ``expired`` | ``forged``, the token when its signature is genuine)."""
    if len(value) > 1024:
        return FORGED, None
    status = VALID
    try:
        payload = signing.loads(value, salt=salt, max_age=max_age_s)
    except signing.SignatureExpired:
        status = EXPIRED
        try:
            payload = signing.loads(value, salt=salt)
        except signing.BadSignature:
            return FORGED, None
    except (signing.BadSignature, ValueError, UnicodeError):
        return FORGED, None
    try:
        token = AdToken(
            serve_id=str(payload["s"])[:64], creative_id=int(payload["c"]), campaign_id=int(payload["k"]),
            placement=str(payload["p"])[:64], user_id=str(payload["u"])[:64],
        )
    except (KeyError, TypeError, ValueError):
        return FORGED, None
    return status, token
