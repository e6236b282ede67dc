"""The event schema: one raw event (a parsed JSON value) in, a normalized event or a rejection out.

Pure: no database, no request, no settings lookups beyond the ``Limits`` passed in. Everything a
client can send is either turned into a :class:`ValidEvent` or a :class:`Rejection` with a reason code
and a short detail; nothing here raises on client input.

Fields (DESIGN.md "Event schema"):

=============  ========================================================================================
``event_id``   required; a UUID string (any version); the dedupe key. Normalized to lowercase.
``type``       required; ``page_view``, ``page_ping``, ``click``, ``ad_impression``, ``ad_click``,
               ``conversion``.
``user_id``    string, 1-64 characters, none of them whitespace, a control character or ``/``
               (``invalid_user_id``; the one rule of every endpoint, ``inference.api.user_id_valid``).
               May be absent when the caller supplies a fallback (``/collect`` uses the visitor's
               ``adsite_uid`` cookie); otherwise ``missing_field``.
``session_id`` string, up to 64 characters.
``ts``         required; epoch milliseconds (number) or an ISO-8601 string (naive means UTC). Must be
               on or after ``MIN_TS_SECONDS`` (1990-01-01: historical datasets such as MovieLens start
               in 1996; a value in seconds mistaken for milliseconds lands in 1970 and is refused), at
               most ``MAX_FUTURE_SECONDS`` (one day) after the server clock, and, for live tracker events,
               at most ``max_age_seconds`` old (``ts_too_old``).
``url``,       strings up to 2048 characters.
``referrer``
``item_id``    string up to 128 characters.
``categories`` list of at most ``MAX_CATEGORIES`` slugs (lowercase letters, digits, ``-``/``_``,
               up to 100 characters); duplicates are dropped, order kept.
``ad``         object with ``creative_id``, ``campaign_id``, ``placement`` (or ``placement_id``), ``serve_id``
               strings up to 64 characters; required, with a non-empty ``creative_id``, for
               ``ad_impression`` and ``ad_click``; allowed on other types.
``properties`` object whose compact JSON is at most ``MAX_PROPERTIES_BYTES`` bytes; for ``page_ping``
               ``properties.engaged_ms`` (if present) is a non-negative number of milliseconds.
=============  ========================================================================================

Anything else at the top level is ``unknown_field``. No string anywhere may hold NUL or an unpaired
surrogate (``invalid_string``): neither survives a trip into PostgreSQL.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeGuard

from inference.api import (
    AD_TYPES,
    CATEGORY_SLUG_RE,
    EVENT_TYPES,
    USER_ID_MAX,
    USER_ID_PATTERN,
    USER_ID_RULE,
    user_id_valid,
)

FIELDS = frozenset(
    {
        "event_id",
        "type",
        "user_id",
        "session_id",
        "ts",
        "url",
        "referrer",
        "item_id",
        "categories",
        "ad",
        "properties",
    }
)
AD_FIELDS = frozenset({"creative_id", "campaign_id", "placement", "placement_id", "serve_id"})
SLUG_RE = CATEGORY_SLUG_RE  # the event contract's (inference.events)
# Canonical lowercase UUIDs (what tracker.js and the importer send) skip the uuid.UUID round trip.
CANONICAL_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_STR = {"user_id": 64, "session_id": 64, "url": 2048, "referrer": 2048, "item_id": 128}
MAX_AD_STR = 64
_MAX_USER_ID, _MAX_SESSION_ID, _MAX_URL, _MAX_REFERRER, _MAX_ITEM_ID = (
    MAX_STR[name] for name in ("user_id", "session_id", "url", "referrer", "item_id")
)
MAX_ENGAGED_MS = 24 * 3600 * 1000
_VALID_CATEGORIES: dict[tuple[str, ...], tuple[str, ...]] = {}

# Reason codes (also the keys of the ledger's "quarantined" object).
NOT_AN_OBJECT = "not_an_object"
UNKNOWN_FIELD = "unknown_field"
MISSING_FIELD = "missing_field"
INVALID_TYPE = "invalid_type"
INVALID_STRING = "invalid_string"
INVALID_USER_ID = "invalid_user_id"
VALUE_TOO_LONG = "value_too_long"
INVALID_EVENT_ID = "invalid_event_id"
INVALID_EVENT_TYPE = "invalid_event_type"
INVALID_TS = "invalid_ts"
TS_TOO_OLD = "ts_too_old"
TS_IN_FUTURE = "ts_in_future"
INVALID_CATEGORY = "invalid_category"
TOO_MANY_CATEGORIES = "too_many_categories"
INVALID_AD = "invalid_ad"
MISSING_AD = "missing_ad"
INVALID_PROPERTIES = "invalid_properties"
PROPERTIES_TOO_LARGE = "properties_too_large"
# /collect (a browser): an event must be the identity cookie's visitor's (``tracking.services``)
NO_IDENTITY_COOKIE = "no_identity_cookie"
USER_ID_MISMATCH = "user_id_mismatch"
REJECTION_REASONS = (
    NOT_AN_OBJECT, UNKNOWN_FIELD, MISSING_FIELD, INVALID_TYPE, INVALID_STRING, INVALID_USER_ID, VALUE_TOO_LONG,
    INVALID_EVENT_ID, INVALID_EVENT_TYPE, INVALID_TS, TS_TOO_OLD, TS_IN_FUTURE, INVALID_CATEGORY,
    TOO_MANY_CATEGORIES, INVALID_AD, MISSING_AD, INVALID_PROPERTIES, PROPERTIES_TOO_LARGE,
    NO_IDENTITY_COOKIE, USER_ID_MISMATCH,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds validation applies; built from the tracking settings by the caller."""

    now_ms: int
    min_ts_ms: int = 631_152_000_000
    max_future_ms: int = 24 * 3600 * 1000
    # 0: no age limit (imports, server-to-server); live tracker events use COLLECT_MAX_AGE_DAYS.
    max_age_ms: int = 0
    max_categories: int = 20
    max_properties_bytes: int = 2048


class ValidEvent(NamedTuple):
    """A normalized event (a NamedTuple: immutable and cheap to build on the import hot path)."""

    event_id: str  # canonical lowercase UUID string
    type: str
    user_id: str
    session_id: str
    ts_ms: int
    url: str = ""
    referrer: str = ""
    item_id: str = ""
    categories: tuple[str, ...] = ()
    ad: dict[str, str] | None = None
    properties: dict[str, Any] = {}  # never mutated: validation always passes its own


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _clean_str(value: str) -> bool:
    """True when ``value`` holds no NUL and no unpaired surrogate (both break the database)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _string(raw: dict[str, Any], name: str, *, default: str = "") -> str:
    value = raw.get(name, default)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise _Reject(INVALID_TYPE, f"{name} must be a string")
    if len(value) > MAX_STR[name]:
        raise _Reject(VALUE_TOO_LONG, f"{name} longer than {MAX_STR[name]} characters")
    if not _clean_str(value):
        raise _Reject(INVALID_STRING, f"{name} holds NUL or an unpaired surrogate")
    return value


def _event_id(raw: dict[str, Any]) -> str:
    if "event_id" not in raw:
        raise _Reject(MISSING_FIELD, "event_id is required")
    value = raw["event_id"]
    if not isinstance(value, str):
        raise _Reject(INVALID_TYPE, "event_id must be a UUID string")
    if len(value) == 36 and CANONICAL_UUID_RE.match(value):
        return value
    if len(value) > 45:
        raise _Reject(INVALID_EVENT_ID, "event_id is not a UUID")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _Reject(INVALID_EVENT_ID, "event_id is not a UUID") from None


def ts_parse_ms(value: object) -> int:
    """Epoch milliseconds from a number (already ms) or an ISO-8601 string; raises ``_Reject``."""
    if isinstance(value, bool):
        raise _Reject(INVALID_TYPE, "ts must be epoch milliseconds or an ISO-8601 string")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Reject(INVALID_TS, "ts is not finite")
        return int(value)
    if isinstance(value, str):
        if len(value) > 40:
            raise _Reject(INVALID_TS, "ts is not an ISO-8601 timestamp")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            raise _Reject(INVALID_TS, "ts is not an ISO-8601 timestamp") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            return int(parsed.timestamp() * 1000)
        except (OverflowError, ValueError, OSError):
            raise _Reject(INVALID_TS, "ts is out of range") from None
    raise _Reject(INVALID_TYPE, "ts must be epoch milliseconds or an ISO-8601 string")


def _ts(raw: dict[str, Any], limits: Limits) -> int:
    if "ts" not in raw:
        raise _Reject(MISSING_FIELD, "ts is required")
    ts_ms = ts_parse_ms(raw["ts"])
    if ts_ms < limits.min_ts_ms:
        raise _Reject(TS_TOO_OLD, "ts is before the earliest accepted time")
    if ts_ms > limits.now_ms + limits.max_future_ms:
        raise _Reject(TS_IN_FUTURE, "ts is too far in the future")
    if limits.max_age_ms and ts_ms < limits.now_ms - limits.max_age_ms:
        raise _Reject(TS_TOO_OLD, "ts is older than live events may be")
    return ts_ms


def _categories(raw: dict[str, Any], limits: Limits) -> tuple[str, ...]:
    value = raw.get("categories")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Reject(INVALID_TYPE, "categories must be a list of slugs")
    if len(value) > limits.max_categories:
        raise _Reject(TOO_MANY_CATEGORIES, f"more than {limits.max_categories} categories")
    # Few distinct category lists occur (a page's categories repeat on every event): remember the
    # ones already found valid, keyed by the exact tuple of strings.
    try:
        key: tuple[Any, ...] | None = tuple(value)
        known = _VALID_CATEGORIES.get(key)  # type: ignore[arg-type]
    except TypeError:  # unhashable items: validated (and refused) below
        key, known = None, None
    if known is not None:
        return known
    seen: dict[str, None] = {}
    for slug in value:
        if not isinstance(slug, str) or not SLUG_RE.match(slug) or slug.endswith("\n"):
            raise _Reject(INVALID_CATEGORY, "categories must be lowercase slugs")
        seen[slug] = None
    result = tuple(seen)
    if key is not None:
        if len(_VALID_CATEGORIES) >= 50_000:
            _VALID_CATEGORIES.clear()
        _VALID_CATEGORIES[key] = result
    return result


def _ad(raw: dict[str, Any], event_type: str) -> dict[str, str] | None:
    value = raw.get("ad")
    if value is None:
        if event_type in AD_TYPES:
            raise _Reject(MISSING_AD, f"{event_type} needs an ad object")
        return None
    if not isinstance(value, dict):
        raise _Reject(INVALID_AD, "ad must be an object")
    ad: dict[str, str] = {}
    for key, item in value.items():
        if key not in AD_FIELDS:
            name = key[:40] if _clean_str(key) else "?"
            raise _Reject(
                INVALID_AD, f"unknown field {'ad.' + name!r} (an ad takes {', '.join(sorted(AD_FIELDS))})"
            )
        if item is None:
            continue
        if not isinstance(item, str) or len(item) > MAX_AD_STR or not _clean_str(item):
            raise _Reject(INVALID_AD, f"ad.{key} must be a string of at most {MAX_AD_STR} characters")
        ad["placement" if key == "placement_id" else key] = item
    if event_type in AD_TYPES and not ad.get("creative_id"):
        raise _Reject(MISSING_AD, f"{event_type} needs ad.creative_id")
    return ad


def _properties(raw: dict[str, Any], event_type: str, limits: Limits) -> dict[str, Any]:
    value = raw.get("properties")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Reject(INVALID_TYPE, "properties must be an object")
    try:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        size = len(encoded.encode("utf-8"))
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        raise _Reject(
            INVALID_PROPERTIES, "properties must be finite JSON without unpaired surrogates"
        ) from None
    if size > limits.max_properties_bytes:
        raise _Reject(PROPERTIES_TOO_LARGE, f"properties larger than {limits.max_properties_bytes} bytes")
    if "\x00" in encoded or "\\u0000" in encoded:
        raise _Reject(INVALID_STRING, "properties hold NUL")
    if event_type == "page_ping" and "engaged_ms" in value:
        engaged = value["engaged_ms"]
        if (
            isinstance(engaged, bool)
            or not isinstance(engaged, int | float)
            or not 0 <= engaged <= MAX_ENGAGED_MS
        ):
            raise _Reject(INVALID_PROPERTIES, "properties.engaged_ms must be 0..86400000")
    return value


def event_json_schema(*, limits: Limits) -> dict[str, Any]:
    """The event as a JSON Schema (the OpenAPI ``Event`` component), from the definitions validation uses.

    Every field of ``FIELDS`` with the type, lengths, patterns and enums checked above; ``null`` reads as
    absent. What JSON Schema cannot say (a timestamp's range relative to the server clock, the compact
    size of ``properties``, the ad that an ad event needs) is in the descriptions."""
    def text(name: str, description: str) -> dict[str, Any]:
        return {"type": "string", "maxLength": MAX_STR[name], "nullable": True, "description": description}

    ad_field = {"type": "string", "maxLength": MAX_AD_STR, "nullable": True}
    properties: dict[str, Any] = {
        "event_id": {"type": "string", "format": "uuid", "description": "made by the sender; the dedupe key"},
        "type": {"type": "string", "enum": sorted(EVENT_TYPES)},
        "user_id": {
            "type": "string", "minLength": 1, "maxLength": USER_ID_MAX, "pattern": f"^{USER_ID_PATTERN}$",
            "description": f"first-party anonymous id: {USER_ID_RULE}; required on /api/v1/events, and on "
            "/collect when the visitor has no `adsite_uid` cookie",
        },
        "session_id": text("session_id", "the sender's session"),
        "ts": {
            "anyOf": [
                {"type": "integer", "minimum": limits.min_ts_ms, "description": "epoch milliseconds"},
                {"type": "number", "minimum": limits.min_ts_ms, "description": "epoch milliseconds (truncated)"},
                {"type": "string", "maxLength": 40, "description": "ISO-8601 (without an offset: UTC)"},
            ],
            "description": "when it happened, by the sender's clock: from 1990 to one day ahead of the server's "
            "(tracker events: at most the collect age limit old)",
        },
        "url": text("url", "the page"),
        "referrer": text("referrer", "the page's referrer"),
        "item_id": text("item_id", "what the page is about (an article, a product)"),
        "categories": {
            "type": "array", "maxItems": limits.max_categories, "nullable": True,
            "items": {"type": "string", "pattern": SLUG_RE.pattern},
            "description": "category slugs; repeats are dropped",
        },
        "ad": {
            "type": "object", "nullable": True, "additionalProperties": False,
            "properties": {name: dict(ad_field) for name in sorted(AD_FIELDS)},
            "description": f"required, with `creative_id`, on {' and '.join(sorted(AD_TYPES))}; "
            "`placement_id` is another name for `placement`",
        },
        "properties": {
            "type": "object", "nullable": True, "additionalProperties": True,
            "description": f"free-form, at most {limits.max_properties_bytes} bytes as compact JSON; on "
            f"page_ping, `engaged_ms` (0-{MAX_ENGAGED_MS}) is the engaged time",
        },
    }
    if set(properties) != FIELDS:  # a field added to validation and not here (or the reverse) fails at once
        raise AssertionError(f"event schema fields {sorted(properties)} != {sorted(FIELDS)}")
    return {
        "type": "object", "properties": properties, "required": ["event_id", "type", "ts"],
        "additionalProperties": False,
    }


def event_validate(raw: object, *, limits: Limits, fallback_user_id: str = "") -> ValidEvent | Rejection:
    """Validate one raw event. The first problem found is the reason; never raises on client input."""
    try:
        return _validate(raw, limits=limits, fallback_user_id=fallback_user_id)
    except _Reject as exc:
        return Rejection(exc.reason, exc.detail)
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:  # belt and braces
        return Rejection(INVALID_TYPE, type(exc).__name__)


def _plain(value: object, max_chars: int) -> TypeGuard[str]:
    """True when ``value`` is a non-empty ``str`` that :func:`_string` would return unchanged and that
    is cheap to prove so: at most ``max_chars`` long, ASCII (so no unpaired surrogate) and without NUL.
    Anything else goes through the full check, which finds the exact reason."""
    return type(value) is str and 0 < len(value) <= max_chars and value.isascii() and "\x00" not in value


def _validate(raw: object, *, limits: Limits, fallback_user_id: str) -> ValidEvent:
    # The checks run in the documented order, so that the first problem found is the reason. The
    # common valid event takes the inline branches (plain ASCII strings, an int ts in range, no ad
    # or properties); whatever they do not prove valid goes through the helper that checks it fully,
    # so every input gets the same result as through the helpers alone (tests/tracking/test_schema.py
    # compares the two on generated input).
    if not isinstance(raw, dict):
        raise _Reject(NOT_AN_OBJECT, "an event must be a JSON object")
    if not FIELDS.issuperset(raw):
        unknown = [key for key in raw if key not in FIELDS]
        name = unknown[0] if isinstance(unknown[0], str) else "?"
        name = name[:40] if _clean_str(name) else "?"
        raise _Reject(UNKNOWN_FIELD, f"unknown field {name!r}")
    get = raw.get
    event_id = get("event_id")
    if not (type(event_id) is str and len(event_id) == 36 and CANONICAL_UUID_RE.match(event_id)):
        event_id = _event_id(raw)
    event_type = get("type")
    if event_type is None:
        raise _Reject(MISSING_FIELD, "type is required")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise _Reject(INVALID_EVENT_TYPE, "type must be one of " + ", ".join(sorted(EVENT_TYPES)))
    user_id = get("user_id")
    if not user_id_valid(user_id):
        user_id = _string(raw, "user_id") or fallback_user_id
        if not user_id:
            raise _Reject(MISSING_FIELD, "user_id is required")
        if not user_id_valid(user_id):
            raise _Reject(INVALID_USER_ID, f"user_id {USER_ID_RULE}")
    session_id = get("session_id", "")
    if session_id != "" and not _plain(session_id, _MAX_SESSION_ID):
        session_id = _string(raw, "session_id")
    ts_ms = get("ts")
    if not (
        type(ts_ms) is int
        and limits.min_ts_ms <= ts_ms <= limits.now_ms + limits.max_future_ms
        and (not limits.max_age_ms or ts_ms >= limits.now_ms - limits.max_age_ms)
    ):
        ts_ms = _ts(raw, limits)
    url = get("url", "")
    if url != "" and not _plain(url, _MAX_URL):
        url = _string(raw, "url")
    referrer = get("referrer", "")
    if referrer != "" and not _plain(referrer, _MAX_REFERRER):
        referrer = _string(raw, "referrer")
    item_id = get("item_id", "")
    if item_id != "" and not _plain(item_id, _MAX_ITEM_ID):
        item_id = _string(raw, "item_id")
    categories = _categories(raw, limits) if "categories" in raw else ()
    ad = None if get("ad") is None and event_type not in AD_TYPES else _ad(raw, event_type)
    properties = {} if get("properties") is None else _properties(raw, event_type, limits)
    return ValidEvent(
        event_id, event_type, user_id, session_id, ts_ms, url, referrer, item_id, categories, ad, properties
    )


def payload_text(value: object, *, max_chars: int) -> tuple[str, int]:
    """A storable text form of a raw event (for quarantine) and its full size in bytes.

    ASCII-escaped JSON, so NUL and unpaired surrogates are kept as escapes, never as raw characters.
    """
    try:
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        text = repr(value)[: max_chars * 2]
        text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text[:max_chars], len(text)


def body_text(body: bytes, *, max_chars: int) -> str:
    """A storable text form of a raw request body: undecodable bytes and NUL become escapes."""
    text = body[: max_chars * 4].decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    return text[:max_chars]


def safe_text(value: str, *, max_chars: int) -> str:
    """``value`` cut to ``max_chars`` with NUL and unpaired surrogates escaped."""
    value = value[:max_chars]
    if _clean_str(value):
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")[:max_chars]
