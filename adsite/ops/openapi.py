"""The OpenAPI schema as the server's own account of itself (drf-spectacular's ``DEFAULT_SCHEMA_CLASS``).

Promise: what a client generated from ``/api/schema/`` may send is what the server accepts, and every
answer it can get is listed with its body (``tests/api/test_contract_schemathesis.py`` checks both with
schemathesis over every operation). The schema is generated from the definitions the server itself
validates and answers with, never written twice:

* error answers from the view's own classes: 401 and 403 where a permission class guards the view, 429
  where it has throttles, 415 where DRF parses its JSON body, 400 where it takes parameters or a body;
  every one with the body ``api_errors`` sends (``ApiErrors``), unless the view declares its own;
* ``additionalProperties: false`` on the body of a serializer that refuses unknown fields
  (``unknown_fields_refused = True``, set by the serializer that does the refusing), ``uniqueItems`` on a
  list field that refuses repeats (``inference/rest/fields.py``);
* enums whose values are site data (the placements a decision may name) from a field's
  ``schema_enum()``, the same function the server checks the values with.

``body_schema_check`` turns a request serializer's published schema into the server's fast check of
that body (a compiled JSON Schema validator, a few microseconds): the hot path accepts exactly what the
schema states, and the serializer only words the errors of a body the schema refuses.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
from django.db import DatabaseError
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ComponentRegistry
from rest_framework import permissions, serializers

from adsite.ops.api_errors import ERRORS_SCHEMA

_ERROR_DESCRIPTIONS = {
    "400": "the request does not validate: one entry per bad field (`body` for the body as a whole)",
    "401": "no credentials, or invalid ones (`Authorization: Token <key>` or `Bearer <key>`): under `detail`",
    "403": "authenticated, but not allowed (a staff endpoint, or a non-staff session): under `detail`",
    "415": "the body is not `application/json`: under `detail`",
    "429": "too many requests: retry after the `Retry-After` header's seconds; under `detail`",
}


def _constrained(parameter: dict[str, Any]) -> bool:
    """A parameter whose value the view can refuse: any query parameter, a path parameter with an enum or
    a pattern narrower than the URL converter's (``[^/]+``: what routing already guarantees)."""
    schema = parameter.get("schema", {})
    return parameter.get("in") == "query" or "enum" in schema or schema.get("pattern", "^[^/]+$") != "^[^/]+$"


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's ``AutoSchema`` plus the error answers and constraints the views enforce."""

    site_data_enums = True  # False: leave out the enums whose values are site data (they change)

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(ERRORS_SCHEMA, code, direction=direction)
            if not responses[code].get("description"):
                responses[code]["description"] = _ERROR_DESCRIPTIONS[code]
        return responses

    def _error_codes(self) -> list[str]:
        view = self.view
        codes = []
        has_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None
        if has_body or any(_constrained(parameter) for parameter in self._get_parameters()):
            codes.append("400")
        if not any(isinstance(p, permissions.AllowAny) for p in view.get_permissions()):
            codes += ["401", "403"]
        if has_body and not getattr(view, "body_read_raw", False):
            codes.append("415")
        if view.get_throttles():
            codes.append("429")
        return codes

    def _map_basic_serializer(self, serializer: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        if getattr(serializer, "unknown_fields_refused", False):
            schema["additionalProperties"] = False
        return schema

    def _map_serializer_field(self, field: Any, direction: Any, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if getattr(field, "unique_items", False) and isinstance(schema, dict):
            schema["uniqueItems"] = True
        enum = getattr(field, "schema_enum", None)
        if callable(enum) and isinstance(schema, dict) and self.site_data_enums:
            try:
                values = sorted(enum())
            except DatabaseError:  # `manage.py spectacular` before `migrate`: the site data is unknown
                values = []
            if values:  # an empty enum admits nothing: leave the pattern to describe the values
                schema["enum"] = values
        return schema


def body_schema(serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """A request serializer's JSON Schema as ``/api/schema/`` publishes it (enums inline), less the enums of
    site data, which the view checks against the same function as it answers (they change at run time)."""
    auto = ApiAutoSchema()
    auto.site_data_enums = False
    auto.registry = ComponentRegistry()
    auto.method, auto.path, auto.view = "POST", "/", None
    schema: dict[str, Any] = auto._map_serializer(serializer_class(context={"request": None}), "request")
    return schema


class body_schema_check:  # noqa: N801  (used as a function)
    """``check(data)``: True when ``data`` is valid by ``serializer_class``'s published schema.

    The validator is compiled on first use (``jsonschema_rs``: ~4 µs for a decision's body here, where the
    serializer takes ~0.3 ms). A value it cannot take in (a string with an unpaired surrogate) is not valid."""

    def __init__(self, serializer_class: type[serializers.Serializer]) -> None:
        self.serializer_class = serializer_class
        self._validator: Any = None

    def __call__(self, data: object) -> bool:
        if self._validator is None:
            self._validator = jsonschema_rs.validator_for(body_schema(self.serializer_class))
        try:
            return bool(self._validator.is_valid(data))
        except (ValueError, TypeError, UnicodeError):
            return False


class CachedTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Token <key>`` and ``Authorization: Bearer <key>``: the same token either way."""

    target_class = "inference.rest.authentication.CachedTokenAuthentication"
    name = ["tokenAuth", "bearerAuth"]
    priority = 1

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        how = "`manage.py create_api_token NAME` prints a key (`--staff` for the staff endpoints)"
        return [
            {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": f'Token-based authentication with required prefix "Token": {how}.',
            },
            {"type": "http", "scheme": "bearer", "description": f"The same key as a bearer token: {how}."},
        ]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"tokenAuth": []}, {"bearerAuth": []}]
