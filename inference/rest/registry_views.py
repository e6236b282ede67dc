"""Staff API over the model registry: list versions, activate one, roll an algorithm back."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.registry import selectors, services
from inference.registry.models import ModelVersion


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


class RegistryErrorSerializer(serializers.Serializer):
    errors = serializers.DictField(child=serializers.CharField())


def _actor(request: Request) -> str:
    return f"api:{request.user.get_username()}"


class ModelVersionListView(APIView):
    permission_classes = [IsAdminUser]

    class FilterSerializer(serializers.Serializer):
        algorithm = serializers.ChoiceField(choices=ModelVersion.Algorithm.choices, required=False)
        status = serializers.ChoiceField(choices=ModelVersion.Status.choices, required=False)

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
        responses={200: ModelVersionOutputSerializer, 404: RegistryErrorSerializer},
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
            404: RegistryErrorSerializer,
            409: RegistryErrorSerializer,
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
        responses={200: ModelVersionOutputSerializer, 409: RegistryErrorSerializer},
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
