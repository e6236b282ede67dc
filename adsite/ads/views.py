"""HTTP for ads: the decisions API, the click redirect, the impression beacon, creative images, and edge
mode's offers and serve endpoints. Thin."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from adsite.ads import integrity
from adsite.ads.decision_input import DecisionInputSerializer, decision_input_fast, placements_unknown
from adsite.ads.decisions import DECISION_SERVED_BY
from adsite.ads.delivery import api_decision, url_absolute
from adsite.ads.edge import edge_offers, edge_serve
from adsite.ads.hot import DECISIONS_THROTTLE
from adsite.ads.integrity import invalid_record, visitor_from_request
from adsite.ads.landing import landing_url_safe
from adsite.ads.models import Creative
from adsite.ads.services.billing import click_record, impression_view_record
from adsite.ads.tokens import CLICK_SALT, VIEW_SALT, token_read
from adsite.ops.api_errors import ERRORS_SCHEMA
from inference.api import FALLBACK_REASONS, THROTTLED_WAIT_ENVIRON
from tracking import api as tracking_api
from tracking.api import rate_limited


@extend_schema_serializer(component_name="AdCreative")
class AdCreativeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    campaign_id = serializers.IntegerField()
    advertiser = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=Creative.Kind.choices, help_text='html: render ONLY in <iframe sandbox="" srcdoc>'
    )
    size = serializers.CharField(help_text="WIDTHxHEIGHT, or fluid")
    headline = serializers.CharField(allow_blank=True)
    body = serializers.CharField(allow_blank=True)
    cta = serializers.CharField(allow_blank=True)
    image_url = serializers.CharField(allow_blank=True, help_text="absolute; empty for an html creative")
    html = serializers.CharField(allow_blank=True, help_text="the html creative's markup; empty otherwise")


@extend_schema_serializer(component_name="AdPlacementDecision")
class AdPlacementDecisionSerializer(serializers.Serializer):
    placement = serializers.CharField()
    house = serializers.BooleanField(help_text="true: the house ad (no paid campaign fits)")
    creative = AdCreativeSerializer(allow_null=True, help_text="null: show your own house ad")
    click_url = serializers.CharField(allow_blank=True, help_text="signed; redirects to the creative's landing URL")
    impression_url = serializers.CharField(allow_blank=True, help_text="signed; GET it when the ad has been viewable")
    explanation = serializers.CharField(allow_blank=True, help_text="why this ad, in a sentence")


@extend_schema_serializer(component_name="AdDecision")
class AdDecisionSerializer(serializers.Serializer):
    decision_id = serializers.UUIDField()
    user_id = serializers.CharField(allow_blank=True, help_text="empty: an anonymous visitor")
    served_by = serializers.ChoiceField(
        choices=list(DECISION_SERVED_BY),
        help_text="who supplied the interests: an interest model of the fallback chain; `context`, the "
        "request's own `categories` (an anonymous visitor, or no time left to ask a model); `none`, "
        "the prediction failed",
    )
    fallback_reason = serializers.ChoiceField(
        choices=list(FALLBACK_REASONS), allow_null=True, help_text="why the preferred model did not answer"
    )
    elapsed_ms = serializers.FloatField(help_text="server time spent on the decision, ms")
    placements = AdPlacementDecisionSerializer(many=True)
    filtered = serializers.DictField(child=serializers.IntegerField(), help_text="reason -> campaigns removed")
    explanation = serializers.DictField(
        required=False, allow_null=True,
        help_text="with `explain=true` only: interest scores, every candidate's score, the filters",
    )


class DecisionsView(APIView):
    """``POST /api/v1/ads/decisions``: the ad for each placement, for one visitor."""

    parser_classes = [JSONParser]  # JSON types are checked exactly: no form encoding
    throttle_classes = [DECISIONS_THROTTLE]

    InputSerializer = DecisionInputSerializer  # the reference for decision_input_fast (and the schema)

    OutputSerializer = AdDecisionSerializer  # the schema only: the body is built below

    def check_throttles(self, request: Request) -> None:
        wait = request._request.META.get(THROTTLED_WAIT_ENVIRON)
        if wait is not None:  # the server's hot route counted this request already and found the client over its rate
            self.throttled(request, float(wait))
        super().check_throttles(request)

    @extend_schema(
        operation_id="ads_decide",
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ERRORS_SCHEMA, 403: ERRORS_SCHEMA, 429: ERRORS_SCHEMA},
        examples=[OpenApiExample("two slots", value={"user_id": "u-42", "placements": ["sidebar", "footer"], "explain": True}, request_only=True)],
        description="Chooses an ad for each placement (budget, caps, pacing, targeting, predicted interests) "
        "and counts the served impressions. With `explain=true` (staff only: 403 otherwise) the answer says "
        "why: the visitor's interest scores, candidates' scores and the filters that removed other campaigns. "
        "Each client's decisions are rate limited (429 with `Retry-After` over its rate).",
    )
    def post(self, request: Request) -> Response:
        values: Mapping[str, Any] | None = decision_input_fast(request.data)
        if values is None:
            data = self.InputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            values = data.validated_data
        if values["explain"] and not request.user.is_staff:
            # the full explanation holds the named visitor's interest scores
            raise PermissionDenied("explain=true is for staff accounts only")
        unknown = placements_unknown(values["placements"])
        if unknown:
            raise serializers.ValidationError({"placements": f"unknown placement: {', '.join(unknown)}"})
        origin = f"{request.scheme}://{request.get_host()}"
        page = origin + request.get_full_path()
        body = api_decision(values, absolute=lambda location: url_absolute(location, origin=origin, page=page))
        return Response(body, status=status.HTTP_200_OK)


def _refused(kind: str, salt: str) -> Callable[[HttpRequest], None]:
    """Count a rate-limited click or impression as invalid traffic (``rate``) under the campaign its
    token names, when the token is genuine."""

    def record(request: HttpRequest) -> None:
        match = getattr(request, "resolver_match", None)
        value = str(match.kwargs.get("token", "")) if match is not None else ""
        _, ad = token_read(value, max_age_s=2**31, salt=salt)
        invalid_record(kind=kind, reason=integrity.RATE, campaign_id=ad.campaign_id if ad else None)

    return record


@never_cache
@require_GET
@rate_limited("click", on_refused=_refused(integrity.CLICK, CLICK_SALT))
def click_redirect(request: HttpRequest, token: str) -> HttpResponse:
    """``GET /c/<token>``: record the click, then go to the creative's stored landing URL (only)."""
    outcome = click_record(token=token, visitor=visitor_from_request(request))
    if outcome.user_id and outcome.outcome in ("billed", "free", "unsettled") and tracking_api.tracking_allowed(request):
        from adsite.ads.feedback import click_event_record

        click_event_record(request=request, outcome=outcome)
    target = landing_url_safe(outcome.landing_url)
    response = HttpResponseRedirect(target or "/")
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_GET
@rate_limited("impression", on_refused=_refused(integrity.IMPRESSION, VIEW_SALT))
def impression_beacon(request: HttpRequest, token: str) -> HttpResponse:
    """``GET /i/<token>``: a viewable impression reported by a front end (counted once, and only for the
    visitor it was served to; anything else is recorded as invalid traffic). Always 204: the answer
    tells a script nothing."""
    impression_view_record(token=token, visitor=visitor_from_request(request))
    return HttpResponse(status=204)


def _edge_refused(request: HttpRequest) -> None:
    invalid_record(kind=integrity.IMPRESSION, reason=integrity.RATE, campaign_id=None)


EDGE_MAX_PLACEMENTS = 8


@never_cache
@require_GET
@rate_limited("page", on_refused=_edge_refused)
def edge_offers_view(request: HttpRequest) -> HttpResponse:
    """``GET /edge/ads?placements=a,b``: the creatives each placement may show, from context only
    (``adsite.ads.edge``). Reads no cookie and no visitor id: the device class of the user agent is the
    only thing about the visitor it uses."""
    names = [n for n in request.GET.get("placements", "").split(",") if n][:EDGE_MAX_PLACEMENTS + 1]
    if not names or len(names) > EDGE_MAX_PLACEMENTS:
        return JsonResponse({"errors": {"placements": f"name 1 to {EDGE_MAX_PLACEMENTS} placements"}}, status=400)
    unknown = placements_unknown(names)
    if unknown:
        return JsonResponse({"errors": {"placements": f"unknown placement: {', '.join(unknown)}"}}, status=400)
    device = tracking_api.user_agent_device(request.META.get("HTTP_USER_AGENT", "") or "")
    answer = edge_offers(placements=names, device=device)
    return JsonResponse({
        "placements": [{"name": name, "size": size} for name, size in answer.placements],
        "offers": [dataclasses.asdict(offer) for offer in answer.offers],
        "knobs": answer.knobs,
        "interest_top": answer.interest_top,
    })


@csrf_exempt  # no cookie or session is read: the signed offers are the only input that counts
@never_cache
@require_POST
@rate_limited("impression", on_refused=_edge_refused)
def edge_serve_view(request: HttpRequest) -> HttpResponse:
    """``POST /edge/ads/serve`` ``{"offers": [offer, ...]}`` (one per placement, the browser's choice):
    each reserved like any served impression, answered with its signed click and impression links or
    the reason it may not run (``adsite.ads.edge.edge_serve``)."""
    try:
        body = json.loads(request.body[:65536] or b"{}")
    except (ValueError, UnicodeError):
        body = None
    offers = body.get("offers") if isinstance(body, dict) else None
    if (
        not isinstance(offers, list) or not 0 < len(offers) <= EDGE_MAX_PLACEMENTS
        or not all(isinstance(o, str) and 0 < len(o) <= 1024 for o in offers)
    ):
        return JsonResponse({"errors": {"offers": f"a list of 1 to {EDGE_MAX_PLACEMENTS} offer strings"}}, status=400)
    served = edge_serve(offers=offers, visitor=visitor_from_request(request))
    return JsonResponse({"served": [dataclasses.asdict(item) for item in served]})


@require_GET
def creative_image(request: HttpRequest, name: str) -> HttpResponse:
    """The locally generated creative images (``MEDIA_ROOT/ads/*.svg``), served as images only."""
    root = (Path(settings.MEDIA_ROOT) / "ads").resolve()
    path = (root / name).resolve()
    if path.parent != root or path.suffix != ".svg" or not path.is_file():
        raise Http404("no such image")
    response = FileResponse(path.open("rb"), content_type="image/svg+xml")
    # an SVG opened on its own must not run script in the site's origin
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["Cache-Control"] = "public, max-age=86400"
    return response


__all__ = [
    "DecisionsView", "click_redirect", "creative_image", "edge_offers_view", "edge_serve_view", "impression_beacon",
    "inline_serializer",
]
