"""Staff API over the model registry: list versions, activate one, roll an algorithm back."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.registry import selectors, services
from inference.registry.models import ModelVersion
from inference.rest.errors import ApiErrorsSerializer


@extend_schema_serializer(component_name="ModelVersion")
class ModelVersionOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "version",
            "algorithm",
            "status",
            "artifact_path",
            "hyperparameters",
            "data_from",
            "data_to",
            "feature_schema_version",
            "metrics",
            "training_seconds",
            "created_at",
            "activated_at",
        ]


def _actor(request: Request) -> str:
    return f"api:{request.user.get_username()}"


class ModelVersionListView(APIView):
    permission_classes = [IsAdminUser]

    class FilterSerializer(serializers.Serializer):
        algorithm = serializers.ChoiceField(choices=ModelVersion.Algorithm.choices, required=False)
        status = serializers.ChoiceField(choices=ModelVersion.Status.choices, required=False)

        def to_internal_value(self, data: Any) -> Any:
            # each filter given at most once, and never empty: "?status=" is a 400, not "no filter"
            # (DRF reads an empty query value of an optional field as absent), as the schema's enum says
            if isinstance(data, QueryDict):
                repeated = {name: "given more than once" for name, values in data.lists() if len(values) > 1}
                if repeated:
                    raise serializers.ValidationError(repeated)
                data = data.dict()
            return super().to_internal_value(data)

    @extend_schema(
        operation_id="models_list",
        parameters=[FilterSerializer],
        responses=ModelVersionOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = selectors.model_versions_list(**filters.validated_data)
        return Response(ModelVersionOutputSerializer(rows, many=True).data)


class ModelVersionActivateView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="models_activate",
        request=None,
        responses={200: ModelVersionOutputSerializer, 404: ApiErrorsSerializer},
    )
    def post(self, request: Request, version: str) -> Response:
        try:
            row = services.model_version_activate(version=version, actor=_actor(request))
        except services.RegistryError as exc:
            return Response({"errors": {"version": str(exc)}}, status=404)
        return Response(ModelVersionOutputSerializer(row).data)


class ModelVersionRetireView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="models_retire",
        request=None,
        responses={
            200: ModelVersionOutputSerializer,
            404: ApiErrorsSerializer,
            409: ApiErrorsSerializer,
        },
    )
    def post(self, request: Request, version: str) -> Response:
        try:
            row = services.model_version_retire(version=version, actor=_actor(request))
        except services.ModelVersionNotFound as exc:
            return Response({"errors": {"version": str(exc)}}, status=404)
        except services.RegistryError as exc:  # the active version
            return Response({"errors": {"version": str(exc)}}, status=409)
        return Response(ModelVersionOutputSerializer(row).data)


class ModelRollbackView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="models_rollback",
        request=None,
        parameters=[
            OpenApiParameter(
                "algorithm", str, OpenApiParameter.PATH, enum=ModelVersion.Algorithm.values,
                description="the algorithm whose previous version becomes active again",
            )
        ],
        responses={200: ModelVersionOutputSerializer, 409: ApiErrorsSerializer},
    )
    def post(self, request: Request, algorithm: str) -> Response:
        if algorithm not in ModelVersion.Algorithm.values:
            return Response(
                {"errors": {"algorithm": f"must be one of {ModelVersion.Algorithm.values}"}}, status=400
            )
        try:
            row = services.model_version_rollback(algorithm=algorithm, actor=_actor(request))
        except services.RegistryError as exc:
            return Response({"errors": {"algorithm": str(exc)}}, status=409)
        return Response(ModelVersionOutputSerializer(row).data)
