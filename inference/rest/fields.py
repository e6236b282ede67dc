"""Serializer fields that take JSON types exactly, and a serializer base that refuses unknown fields.

The API's request bodies are validated by serializers built from these, and the OpenAPI schema is
generated from the same serializers (``adsite/ops/openapi.py``): ``unknown_fields_refused`` becomes
``additionalProperties: false``, ``unique_items`` becomes ``uniqueItems: true``, ``schema_enum`` (the
function that lists values which are site data) becomes the enum. DRF's own fields coerce (``7`` to
``"7"``, ``"yes"`` to ``True``, ``"5"`` to ``5``); a client generated from the schema sends exact JSON
types, and so must everyone else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rest_framework import serializers

from inference.user_ids import USER_ID_PATTERN, USER_ID_RULE, user_id_valid


class StrictSlugField(serializers.SlugField):
    """A slug that is a JSON string, untrimmed; ``schema_enum`` lists the values where they are site data."""

    def __init__(self, *, schema_enum: Callable[[], Iterable[str]] | None = None, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, **kwargs)
        self.schema_enum = schema_enum

    def to_internal_value(self, data: Any) -> str:
        if type(data) is not str or data.endswith("\n"):  # the validator's "$" would let "x\n" through
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictUserIdField(serializers.RegexField):
    """The one user id rule (``inference.user_ids``), as a JSON string (``allow_blank``: ``""`` allowed)."""

    def __init__(self, *, blank_means: str = "", **kwargs: Any) -> None:
        message = USER_ID_RULE + (f" (or empty: {blank_means})" if blank_means else "")
        super().__init__(
            rf"^{USER_ID_PATTERN}$", trim_whitespace=False, allow_blank=bool(blank_means),
            error_messages={"invalid": message}, **kwargs,
        )

    def to_internal_value(self, data: Any) -> str:
        if type(data) is not str or not (user_id_valid(data) or (data == "" and self.allow_blank)):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only (not ``"5"``, ``5.0`` or ``true``)."""

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean only (DRF's BooleanField takes ``"yes"``, ``1``, ``"on"``...)."""

    default_error_messages = {"invalid": "must be a JSON boolean (true or false)"}

    def to_internal_value(self, data: Any) -> bool:
        if type(data) is not bool:
            self.fail("invalid")
        return data


class UniqueListField(serializers.ListField):
    """A list whose items are each given at most once (the schema's ``uniqueItems``)."""

    unique_items = True

    def __init__(self, *, item_name: str = "item", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item_name = item_name

    def to_internal_value(self, data: Any) -> list[Any]:
        value: list[Any] = super().to_internal_value(data)
        repeated = sorted({str(item) for item in value if value.count(item) > 1})
        if repeated:
            raise serializers.ValidationError(
                f"each {self.item_name} at most once; repeated: {', '.join(repeated)}"
            )
        return value


class ClosedSerializer(serializers.Serializer):
    """A body that refuses fields it does not declare: a 400 naming each (schema: no additional properties)."""

    unknown_fields_refused = True

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = [str(key)[:64] for key in data if key not in self.fields]
            if unknown:
                expected = ", ".join(self.fields)
                raise serializers.ValidationError({name: f"unknown field (expected {expected})" for name in unknown})
        return super().to_internal_value(data)
