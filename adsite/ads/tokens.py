"""Signed click and impression links, and the serve ids they carry.

A token is ``django.core.signing`` output (HMAC with SECRET_KEY, timestamped) of the served
impression's serve id, creative, campaign, placement and visitor, plus who the visitor is for the
integrity checks (``adsite.ads.integrity``): the identity cookie's id, or without one a binding (an HMAC
of the truncated address and user agent the decision saw, never the address itself), and the origin
(``page``: the site rendered it; ``api``: an authenticated API client asked for it; ``edge``: the
visitor's browser chose it among the offers of ``adsite.ads.edge``), and the impression's repeat bucket
(its click is counted there for the wear-out of repeated ads, ``scoring.wear_out_factors``). It names the
creative, never a URL: the redirect target is always looked up from the creative's stored landing URL.

A serve id (``<random>.<issued, base 36>.<mac>``, at most 64 characters) is itself signed over the
creative and the visitor it was served to, so an ``ad_impression`` event can name it (``ad.serve_id``)
and the server can tell an id it issued from an invented one without storing every impression.

Both verify against ``SECRET_KEY`` and then each of ``SECRET_KEY_FALLBACKS``: links served before a
key rotation keep working for their lifetime.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.utils.crypto import salted_hmac

from adsite.ads.accounting import NO_REPEAT, REPEAT_BUCKETS

CLICK_SALT = "adsite.ads.click"
VIEW_SALT = "adsite.ads.view"
SERVE_SALT = "adsite.ads.serve"
BINDING_SALT = "adsite.ads.binding"
OFFER_SALT = "adsite.ads.offer"

VALID = "valid"
FORGED = "forged"
EXPIRED = "expired"

PAGE = "page"
API = "api"
# chosen on the visitor's device (edge mode): the server made the offer, the browser picked it
EDGE = "edge"
ORIGINS = (PAGE, API, EDGE)


@dataclass(frozen=True, slots=True)
class AdToken:
    serve_id: str
    creative_id: int
    campaign_id: int
    placement: str
    user_id: str
    binding: str = ""  # visitor_binding() of a visitor without an identity cookie
    origin: str = PAGE
    repeat: int = NO_REPEAT  # the impression's repeat bucket (``accounting.repeat_bucket``), if known


def token_make(*, token: AdToken, salt: str = CLICK_SALT) -> str:
    return tokens_make(token=token, salts=(salt,))[0]


def tokens_make(*, token: AdToken, salts: Sequence[str]) -> list[str]:
    """``token_make`` of one token under each of ``salts`` (a served ad's click and impression links): the
    payload serialized and compressed once, then timestamped and signed per salt.

    The output is exactly ``signing.dumps(payload, salt=salt, compress=True)``'s (``token_read`` verifies it
    with ``signing.loads``; ``tests/ads/test_tokens.py`` holds the two equal), written out because a decision
    signs two links per placement: Django's signer derives its key from the salt and ``SECRET_KEY`` at every
    call, which was a third of a link's cost; the derived keys are kept here (``_signing_key``)."""
    payload = {
        "s": token.serve_id, "c": token.creative_id, "k": token.campaign_id, "p": token.placement,
        "u": token.user_id,
    }
    if token.binding:
        payload["b"] = token.binding
    if token.origin != PAGE:
        payload["o"] = token.origin
    if token.repeat >= 0:
        payload["r"] = token.repeat
    data = json.dumps(payload, separators=(",", ":")).encode("latin-1")  # signing.JSONSerializer
    compressed = zlib.compress(data)
    dot = len(compressed) < len(data) - 1  # as signing: compressed only where it saves space
    encoded = ("." if dot else "") + _b64(compressed if dot else data)
    # "<payload>:<timestamp>:<signature>"; the payload (base64url, maybe a leading ".") holds no ":"
    value = f"{encoded}:{signing.b62_encode(int(time.time()))}"
    secret = settings.SECRET_KEY
    return [f"{value}:{_b64(hmac.new(_signing_key(salt, secret), value.encode(), hashlib.sha256).digest())}" for salt in salts]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@functools.lru_cache(maxsize=32)
def _signing_key(salt: str, secret: str) -> bytes:
    """The HMAC key ``signing.Signer(salt=salt)`` signs with under ``secret`` (``salted_hmac``'s derived key)."""
    return hashlib.sha256(f"{salt}signer".encode() + secret.encode()).digest()


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
            binding=str(payload.get("b", ""))[:32], origin=payload["o"] if payload.get("o") in ORIGINS else PAGE,
            repeat=_repeat_read(payload.get("r", NO_REPEAT)),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return FORGED, None
    return status, token


def _repeat_read(value: object) -> int:
    """A token's repeat bucket: one the server writes, else NO_REPEAT (absent, or not a bucket)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < REPEAT_BUCKETS else NO_REPEAT


def _keys() -> list[str]:
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def visitor_binding(*, ip_truncated: str, user_agent: str) -> str:
    """Who a visitor without an identity cookie is, for their clicks: an HMAC of the truncated address
    and the user agent (16 hex characters; neither value can be read back from it)."""
    return str(salted_hmac(BINDING_SALT, f"{ip_truncated}|{user_agent}", algorithm="sha256").hexdigest()[:16])


def binding_matches(binding: str, *, ip_truncated: str, user_agent: str) -> bool:
    if not binding:
        return False
    message = f"{ip_truncated}|{user_agent}"
    return any(
        hmac.compare_digest(binding, salted_hmac(BINDING_SALT, message, secret=key, algorithm="sha256").hexdigest()[:16])
        for key in _keys()
    )


def _serve_mac(head: str, creative_id: int, user_id: str, key: str) -> str:
    """``salted_hmac(SERVE_SALT, ..., secret=key, algorithm="sha256")``'s hex digest, cut, with its derived key kept."""
    return hmac.new(_serve_key(key), f"{head}|{creative_id}|{user_id}".encode(), hashlib.sha256).hexdigest()[:22]


@functools.lru_cache(maxsize=8)
def _serve_key(secret: str) -> bytes:
    return hashlib.sha256(SERVE_SALT.encode() + secret.encode()).digest()


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def serve_id_make(*, nonce: str, creative_id: int, user_id: str, now: float | None = None) -> str:
    """A serve id for one served impression of ``creative_id`` to ``user_id`` (signed, see the docstring)."""
    issued = int(time.time() if now is None else now)
    head = f"{nonce[:16]}.{_base36(issued)}"
    return f"{head}.{_serve_mac(head, creative_id, user_id, settings.SECRET_KEY)}"


def serve_id_read(value: str, *, creative_id: int, user_id: str, max_age_s: int, now: float | None = None) -> str:
    """``valid`` when this server issued ``value`` for this creative and visitor within ``max_age_s``;
    ``expired`` when it did, earlier; ``forged`` otherwise (made up, or naming another creative or visitor)."""
    parts = value.split(".")
    if len(parts) != 3 or len(value) > 64:
        return FORGED
    head = f"{parts[0]}.{parts[1]}"
    if not any(hmac.compare_digest(parts[2], _serve_mac(head, creative_id, user_id, key)) for key in _keys()):
        return FORGED
    try:
        issued = int(parts[1], 36)
    except ValueError:
        return FORGED
    now = time.time() if now is None else now
    return EXPIRED if now - issued > max_age_s else VALID
