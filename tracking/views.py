"""HTTP entry points for events: ``POST /collect`` (browser beacon) and ``POST /api/v1/events``.

Both read the body themselves, bounded by ``TRACKING["MAX_BODY_BYTES"]`` (never more is read), so that a
body that is not JSON, or is too large, is still kept in quarantine; then they call
``tracking.services.events_ingest``. Answers:

* 202 ``{"accepted": n, "duplicate": n, "rejected": [{"index": i, "reason": "...", "detail": "..."}],
  "dropped_for_privacy": n}`` -- per-event outcome; rejected events are quarantined. In services mode
  "accepted" means appended to the buffer (a copy that only the database recognises as a duplicate
  is counted in the ledger's ``duplicates`` when flushed).
* 400 ``{"error": "invalid_json" | "invalid_batch" | "batch_too_large", "detail": ...}`` -- the body
  is quarantined whole.
* 413 ``{"error": "body_too_large", ...}`` -- the first bytes and the declared size are quarantined.
* 429 ``{"error": "quarantine_budget_spent"}`` with ``Retry-After`` (``/collect`` only) -- this address has
  sent more invalid input than the site keeps per window (``tracking.quarantine_budget``); nothing of
  the request was stored; retry later.
* 503 ``{"error": "unavailable"}`` -- neither the buffer nor the database could take the batch; retry.

Privacy (``/collect`` only): a request with ``DNT: 1``, ``Sec-GPC: 1``, or without the consent cookie
where consent is required, is answered 202 with every event counted in ``dropped_for_privacy`` and
nothing stored, not even in quarantine (storing it would defeat the signal).
``/api/v1/events`` is server to server (token auth): the sender is responsible for its visitors'
choices; the request's own User-Agent and address are not stored there.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tracking.conf import tracking_settings
from tracking.consent import PRIVACY_REFUSALS, tracking_refusal
from tracking.schema import REJECTION_REASONS, event_json_schema
from tracking.services import (
    IngestContext,
    QuarantineBudgetSpent,
    StorageUnavailable,
    body_quarantine,
    context_from_request,
    events_ingest,
    ledger_counter_add,
    limits_for,
)

BODY_ERRORS = (
    "invalid_json", "invalid_batch", "batch_too_large", "body_too_large", "quarantine_budget_spent", "unavailable"
)


class _BodyError(Exception):
    def __init__(self, status: int, reason: str, detail: str, body: bytes, size: int) -> None:
        self.status, self.reason, self.detail, self.body, self.size = status, reason, detail, body, size


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _events_read(request: HttpRequest) -> list[Any]:
    """The batch's events; raises ``_BodyError`` for a body too large, not JSON, or not a batch."""
    conf = tracking_settings()
    max_bytes = int(conf.MAX_BODY_BYTES)
    keep = min(max_bytes, int(conf.QUARANTINE_PAYLOAD_CHARS))
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > max_bytes:
        raise _BodyError(
            413, "body_too_large", f"{declared} bytes > {max_bytes}", request.read(keep), declared
        )
    body = request.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise _BodyError(413, "body_too_large", f"more than {max_bytes} bytes", body[:keep], len(body))
    try:
        parsed = json.loads(body, parse_float=_finite_float, parse_constant=_constant)
    except (ValueError, RecursionError) as exc:
        detail = type(exc).__name__ if isinstance(exc, RecursionError) else str(exc)[:200]
        raise _BodyError(400, "invalid_json", detail, body, len(body)) from None
    if not isinstance(parsed, dict) or set(parsed) != {"events"} or not isinstance(parsed["events"], list):
        raise _BodyError(400, "invalid_batch", 'the body must be {"events": [...]}', body, len(body))
    if len(parsed["events"]) > int(conf.MAX_BATCH_EVENTS):
        raise _BodyError(400, "batch_too_large", f"more than {conf.MAX_BATCH_EVENTS} events", body, len(body))
    return parsed["events"]


def _unavailable() -> Response:
    return Response({"error": "unavailable", "detail": "storage unavailable, retry later"}, status=503)


def _budget_spent(exc: QuarantineBudgetSpent) -> Response:
    seconds = max(1, math.ceil(exc.retry_after))
    return Response(
        {
            "error": "quarantine_budget_spent",
            "detail": f"too much invalid input from this address; nothing was stored; retry in {seconds} s",
        },
        status=429,
        headers={"Retry-After": str(seconds)},
    )


def _ingest_response(
    request: HttpRequest, context: IngestContext, *, privacy_refusal: str | None
) -> Response:
    try:
        events = _events_read(request)
    except _BodyError as exc:
        if privacy_refusal is None:
            try:
                body_quarantine(
                    body=exc.body, size=exc.size, reason=exc.reason, detail=exc.detail, context=context
                )
            except StorageUnavailable:
                return _unavailable()
            except QuarantineBudgetSpent as spent:
                return _budget_spent(spent)
        return Response({"error": exc.reason, "detail": exc.detail}, status=exc.status)
    if privacy_refusal is not None:
        if events:
            try:
                ledger_counter_add(name="dropped_for_privacy", n=len(events))
            except Exception:  # a counter is not worth failing the answer for
                pass
        return Response(
            {
                "accepted": 0,
                "duplicate": 0,
                "rejected": [],
                "dropped_for_privacy": len(events),
                "reason": privacy_refusal,
            },
            status=202,
        )
    try:
        result = events_ingest(events=events, context=context)
    except StorageUnavailable:
        return _unavailable()
    except QuarantineBudgetSpent as spent:
        return _budget_spent(spent)
    return Response(
        {
            "accepted": result.accepted,
            "duplicate": result.duplicate,
            "rejected": [{"index": r.index, "reason": r.reason, "detail": r.detail} for r in result.rejected],
            "dropped_for_privacy": 0,
        },
        status=202,
    )


_DESCRIPTION = __doc__


class EventSchema:
    """The ``Event`` component: ``tracking.schema.event_json_schema``, from validation's own definitions."""


class EventBatchSchema:
    """The ``EventBatch`` component: ``{"events": [...]}``; what a value in the list that is not a valid
    event gets is a per-event rejection in the 202, not a 400 (DESIGN.md), and the schema says so."""


class EventSchemaExtension(OpenApiSerializerExtension):
    target_class = EventSchema

    def get_name(self, auto_schema: Any, direction: Any) -> str:
        return "Event"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return event_json_schema(limits=limits_for(now_ms=0))


class EventBatchSchemaExtension(OpenApiSerializerExtension):
    target_class = EventBatchSchema

    def get_name(self, auto_schema: Any, direction: Any) -> str:
        return "EventBatch"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        event = auto_schema.resolve_serializer(EventSchema, direction).ref
        return {
            "type": "object",
            "required": ["events"],
            "additionalProperties": False,
            "properties": {
                "events": {
                    "type": "array",
                    "maxItems": int(tracking_settings().MAX_BATCH_EVENTS),
                    "items": {
                        "anyOf": [event, {}],
                        "description": "an Event. Any other JSON value is accepted into the batch and "
                        "answered per event: listed under `rejected` with its index and reason (202), and "
                        "kept in quarantine",
                    },
                }
            },
        }


_REJECTED = inline_serializer(
    "RejectedEvent",
    {
        "index": serializers.IntegerField(help_text="the event's position in `events`"),
        "reason": serializers.ChoiceField(choices=list(REJECTION_REASONS)),
        "detail": serializers.CharField(),
    },
    many=True,
)
_ACCEPTED = inline_serializer(
    "CollectResult",
    {
        "accepted": serializers.IntegerField(),
        "duplicate": serializers.IntegerField(),
        "rejected": _REJECTED,
        "dropped_for_privacy": serializers.IntegerField(),
        "reason": serializers.ChoiceField(
            choices=list(PRIVACY_REFUSALS), required=False,
            help_text="/collect only: why nothing was recorded (every event counted in dropped_for_privacy)",
        ),
    },
)
_ERROR = inline_serializer(
    "CollectError",
    {
        "error": serializers.ChoiceField(choices=list(BODY_ERRORS)),
        "detail": serializers.CharField(),
    },
)
_EXAMPLE = OpenApiExample(
    "one page view",
    value={
        "events": [
            {
                "event_id": "6f1c2a3e-5b7d-4c8e-9f00-112233445566",
                "type": "page_view",
                "user_id": "b1946ac9-2c3f-4e1a-8d7b-0a1b2c3d4e5f",
                "session_id": "s-1",
                "ts": 1767225600000,
                "url": "https://example.org/a/some-article",
                "item_id": "some-article",
                "categories": ["technology"],
            }
        ]
    },
    request_only=True,
)
_RESPONSES = {
    202: OpenApiResponse(_ACCEPTED, "per-event outcome"),
    400: OpenApiResponse(_ERROR, "not JSON / not a batch / too many events (quarantined)"),
    413: OpenApiResponse(_ERROR, "body too large (quarantined)"),
    429: OpenApiResponse(
        _ERROR,
        "rate limited (per address and per visitor), or this address's quarantine budget spent "
        "(nothing stored): retry after Retry-After seconds",
    ),
    503: OpenApiResponse(_ERROR, "storage unavailable: retry"),
}


class CollectView(APIView):
    """``POST /collect``: the browser beacon (JSON, also as ``text/plain``); anonymous, no CSRF."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    body_read_raw = True  # any content type: sendBeacon sends text/plain (no 415)

    @extend_schema(
        operation_id="collect",
        summary="Record clickstream events (browser beacon)",
        description=_DESCRIPTION,
        request={"application/json": EventBatchSchema, "text/plain": EventBatchSchema},
        responses=_RESPONSES,
        examples=[_EXAMPLE],
        tags=["tracking"],
    )
    def post(self, request: Request) -> Response:
        django_request = request._request
        refusal = tracking_refusal(django_request)
        context = context_from_request(request=django_request, source="tracker")
        return _ingest_response(django_request, context, privacy_refusal=refusal)


class EventsApiView(APIView):
    """``POST /api/v1/events``: the same schema, server to server, token auth (the site's default classes:
    a valid token is remembered per process for a few seconds, as on every other API endpoint)."""

    permission_classes = [IsAuthenticated]
    body_read_raw = True  # read as JSON whatever its content type (no 415)

    @extend_schema(
        operation_id="events_create",
        summary="Record clickstream events (server to server)",
        description="Same schema and answers as /collect; every event must carry its user_id.",
        request={"application/json": EventBatchSchema},
        responses=_RESPONSES,
        examples=[_EXAMPLE],
        tags=["tracking"],
    )
    def post(self, request: Request) -> Response:
        django_request = request._request
        context = context_from_request(request=django_request, source="api")
        return _ingest_response(django_request, context, privacy_refusal=None)


class UserDataDeleteView(APIView):
    """``DELETE /api/v1/users/{user_id}/data``: the privacy operation, for staff."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="user_data_delete",
        summary="Delete one visitor's data",
        parameters=[
            OpenApiParameter(
                "user_id", {"type": "string", "pattern": "^[^/]+$"}, OpenApiParameter.PATH,
                description="any id data is held under, even one outside the user id rule (quarantined rows "
                "keep the id they came with); an id without data deletes nothing",
            )
        ],
        description="Deletes the visitor's events, quarantined rows, online features and derived data.",
        responses={
            200: inline_serializer(
                "UserDataDeleted",
                {
                    "user_id": serializers.CharField(),
                    "events": serializers.IntegerField(),
                    "quarantined": serializers.IntegerField(),
                },
            )
        },
    )
    def delete(self, request: Request, user_id: str) -> Response:
        from tracking.privacy import user_data_delete

        result = user_data_delete(user_id=user_id)
        return Response({"user_id": user_id, "events": result.events, "quarantined": result.quarantined})
