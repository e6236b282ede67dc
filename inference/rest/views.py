"""Interests endpoints: ``GET /api/v1/users/{user_id}/interests?top=K`` and the batch form."""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.api import Deadline, predict_interests
from inference.rest.authentication import CachedTokenAuthentication
from inference.rest.fields import ClosedSerializer, StrictIntegerField, StrictUserIdField
from inference.rest.hot import THROTTLED_WAIT, interests_answer, server_timing
from inference.rest.negotiation import FirstRendererNegotiation
from inference.rest.parameters import (
    BATCH_MAX,
    TOP_DEFAULT,
    TOP_MAX,
    BadParameter,
    top_parse_query,
    user_id_parse,
)
from inference.rest.permissions import IsServiceClientOrStaff
from inference.rest.renderers import ORJSONRenderer
from inference.rest.throttling import InterestsBatchRateThrottle, InterestsRateThrottle
from inference.serving.interests import FALLBACK_REASONS, HISTORIES, SERVED_BY, THIN_HISTORY_EVENTS
from inference.user_ids import USER_ID_PATTERN, USER_ID_RULE


class CategoryScoreSerializer(serializers.Serializer):
    category = serializers.CharField()
    score = serializers.FloatField(
        help_text="ranks the categories of this answer, in (0, 1); not comparable across answers or models"
    )
    probability = serializers.FloatField(
        allow_null=True,
        help_text="calibrated chance that the category occurs among the user's next 10 interest events "
        "(fitted on the model's validation slice; the prior reads its share as a per-event chance); "
        "null when the serving model has no calibration",
    )


@extend_schema_serializer(component_name="InterestsConfidence")
class ConfidenceSerializer(serializers.Serializer):
    history = serializers.ChoiceField(
        choices=list(HISTORIES),
        help_text=f"cold: no interest event yet (the population prior answered); thin: fewer than "
        f"{THIN_HISTORY_EVENTS} (shorter than any history the trained models learned from); established",
    )
    history_events = serializers.IntegerField(help_text="the user's interest events the answer saw")
    from_prior = serializers.BooleanField(
        help_text="the prior answered (population popularity blended with the user's own decayed counts), "
        "not a trained ranker: see fallback_reason for why"
    )
    calibrated = serializers.BooleanField(help_text="whether the probabilities are calibrated (else null)")


@extend_schema_serializer(component_name="Interests")
class InterestsOutputSerializer(serializers.Serializer):
    """Schema only: the response is built by hand (``Interests.as_dict``)."""

    categories = CategoryScoreSerializer(many=True)
    served_by = serializers.ChoiceField(
        choices=list(SERVED_BY),
        help_text="the ranker that answered: a learned model (neural, gbdt), the baseline ranker the "
        "registry serves when no learned model beats it on the validation slice (decayed, frequency, "
        "recent, popularity), or the prior (cold start, or every ranker failed or was out of time)",
    )
    model_version = serializers.CharField()
    fallback_reason = serializers.ChoiceField(
        choices=list(FALLBACK_REASONS), allow_null=True, help_text="why the preferred model did not answer"
    )
    elapsed_ms = serializers.FloatField(help_text="server time spent on the prediction, ms")
    confidence = ConfidenceSerializer(help_text="how far to trust this answer")


@extend_schema_serializer(component_name="InterestsBatchInput")
class InterestsBatchInputSerializer(ClosedSerializer):
    """Many users in one call, the same ``top`` for each."""

    user_ids = serializers.ListField(
        child=StrictUserIdField(help_text=USER_ID_RULE), min_length=1, max_length=BATCH_MAX,
        help_text="the users, each answered in this order (a repeated id is answered each time)",
    )
    top = StrictIntegerField(min_value=1, max_value=TOP_MAX, default=TOP_DEFAULT, help_text="categories per user")


class UserInterestsView(APIView):
    # the per-request hot path: tokens remembered per process for a few seconds (authentication.py)
    authentication_classes = [CachedTokenAuthentication, SessionAuthentication]
    permission_classes = [IsServiceClientOrStaff]
    throttle_classes = [InterestsRateThrottle]
    renderer_classes = [ORJSONRenderer]  # JSON only, without parsing Accept on each call (negotiation.py)
    content_negotiation_class = FirstRendererNegotiation

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # the common request (a remembered token, valid parameters, under its rate) without DRF's request
        # machinery; every other one through DRF's dispatch, with its own answers (hot.py)
        if request.method == "GET":
            answer = interests_answer(request, kwargs.get("user_id", ""), throttle=InterestsRateThrottle,
                                      allow=self._allow)
            if answer is not None:
                self.args, self.kwargs, self.request = args, kwargs, request  # type: ignore[assignment]
                return answer
        return super().dispatch(request, *args, **kwargs)

    @property
    def _allow(self) -> str:
        return ", ".join(self.allowed_methods)

    def check_throttles(self, request: Request) -> None:
        wait = getattr(request._request, THROTTLED_WAIT, None)
        if wait is not None:  # the hot path counted this hit already and found the client over its rate
            self.throttled(request, wait)
        super().check_throttles(request)

    @extend_schema(
        operation_id="user_interests",
        summary="Predicted interests of one user",
        parameters=[
            OpenApiParameter(
                "top",
                {"type": "integer", "minimum": 1, "maximum": TOP_MAX},
                description=f"how many categories (1-{TOP_MAX}, default 10)",
                required=False,
            ),
            OpenApiParameter(
                "user_id",
                {"type": "string", "pattern": f"^{USER_ID_PATTERN}$"},
                OpenApiParameter.PATH,
                description=f"the first-party anonymous id ({USER_ID_RULE}); an unknown one gets a cold-start answer",
            ),
        ],
        responses={200: InterestsOutputSerializer},
    )
    def get(self, request: Request, user_id: str) -> Response:
        try:
            user_id = user_id_parse(user_id)
            top = top_parse_query(request.query_params.getlist("top"))
        except BadParameter as exc:
            return Response(exc.body(), status=400)
        interests = predict_interests(user_id, deadline=Deadline.from_settings(), top=top)
        response = Response(interests.as_dict())
        response["Server-Timing"] = server_timing(interests, interests.elapsed_ms)
        return response


class InterestsBatchView(APIView):
    """Many users in one call; each user gets the full prediction budget of its own."""

    permission_classes = [IsServiceClientOrStaff]
    throttle_classes = [InterestsBatchRateThrottle]
    parser_classes = [JSONParser]
    renderer_classes = [ORJSONRenderer]
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        operation_id="interests_batch",
        summary="Predicted interests of many users",
        request=InterestsBatchInputSerializer,
        responses={
            200: inline_serializer(
                "InterestsBatch",
                {
                    "results": inline_serializer(
                        "InterestsBatchItem",
                        {"user_id": serializers.CharField(), "interests": InterestsOutputSerializer()},
                        many=True,
                    ),
                    "elapsed_ms": serializers.FloatField(),
                },
            ),
        },
    )
    def post(self, request: Request) -> Response:
        started = time.perf_counter()
        data = InterestsBatchInputSerializer(data=request.data)  # a body that is not JSON: a 400 about it
        data.is_valid(raise_exception=True)
        user_ids, top = data.validated_data["user_ids"], data.validated_data["top"]
        results = [
            {
                "user_id": user_id,
                "interests": predict_interests(user_id, deadline=Deadline.from_settings(), top=top).as_dict(),
            }
            for user_id in user_ids
        ]
        elapsed = (time.perf_counter() - started) * 1000.0
        response = Response({"results": results, "elapsed_ms": round(elapsed, 3)})
        response["Server-Timing"] = f"total;dur={elapsed:.3f}"
        return response
