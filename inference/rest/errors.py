"""The API's one error body, ``{"errors": {"<name>": "<what is wrong>"}}``, as the OpenAPI schema shows it.

The site's exception handler (``adsite/ops/api_errors.py``) makes every DRF error this shape; views that
answer an error themselves (400, 404, 409) build the same. Here, not in ``adsite``, because ``inference``
imports nothing from the site and its views declare this body too.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers


@extend_schema_serializer(component_name="ApiErrors")
class ApiErrorsSerializer(serializers.Serializer):
    errors = serializers.DictField(
        child=serializers.CharField(),
        help_text="field -> what is wrong (`body` for the body as a whole, `detail` for a non-field error)",
    )
