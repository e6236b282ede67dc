"""The decisions API's input, checked fast: the common well-formed body without DRF's serializer.

``DecisionInputSerializer`` (the view's ``InputSerializer``) is the reference: it words every error and
is what the OpenAPI schema shows; ``decision_input_fast`` gives the same values for the common
well-formed body without it. Both live here with what they share (the fields, the devices; the user id
rule is ``inference.api.user_id_valid``, the one of every endpoint). Both take JSON types exactly (``user_id`` a string,
``explain`` a boolean, ``placements``/``categories`` lists of strings), refuse unknown fields and
duplicate placements. Whether each placement exists is the view's check, from the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from inference.api import USER_ID_PATTERN, USER_ID_RULE, user_id_valid

DEVICES = ("desktop", "mobile", "tablet", "other")
INPUT_FIELDS = ("user_id", "placements", "device", "categories", "explain")
_SLUG = re.compile(r"[-a-zA-Z0-9_]+")  # DRF's SlugField (allow_unicode=False)
_INPUT_FIELDS = frozenset(INPUT_FIELDS)


class _StrictSlugField(serializers.SlugField):
    """A slug that is a JSON string (DRF's CharField would turn ``7`` into ``"7"``), untrimmed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if type(data) is not str or data.endswith("\n"):  # the validator's "$" would let "x\n" through
            self.fail("invalid")
        return super().to_internal_value(data)


class _StrictUserIdField(serializers.RegexField):
    """The one user id rule (``inference.api``), as a JSON string; ``""`` is the anonymous visitor."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            rf"^{USER_ID_PATTERN}$", trim_whitespace=False, allow_blank=True,
            error_messages={"invalid": f"{USER_ID_RULE} (or empty: an anonymous visitor)"},
            **kwargs,
        )

    def to_internal_value(self, data: Any) -> str:
        if type(data) is not str or not user_id_valid(data):  # the validator's "$" would let "x\n" through
            self.fail("invalid")
        return data


class _StrictBooleanField(serializers.BooleanField):
    """A JSON boolean only (DRF's BooleanField takes ``"yes"``, ``1``, ``"on"``...)."""

    default_error_messages = {"invalid": "must be a JSON boolean (true or false)"}

    def to_internal_value(self, data: Any) -> bool:
        if type(data) is not bool:
            self.fail("invalid")
        return data


@extend_schema_serializer(component_name="AdDecisionInput")
class DecisionInputSerializer(serializers.Serializer):
    user_id = _StrictUserIdField(required=False, default="", help_text=USER_ID_RULE + "; empty: anonymous")
    placements = serializers.ListField(
        child=_StrictSlugField(max_length=64), min_length=1, max_length=10,
        help_text="names of the site's placements (Placement), each at most once",
    )
    device = serializers.ChoiceField(choices=list(DEVICES), default="other")
    categories = serializers.ListField(child=_StrictSlugField(max_length=100), max_length=20, default=list)
    explain = _StrictBooleanField(default=False)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = [str(key)[:64] for key in data if key not in INPUT_FIELDS]
            if unknown:
                expected = ", ".join(INPUT_FIELDS)
                raise serializers.ValidationError({name: f"unknown field (expected {expected})" for name in unknown})
        return super().to_internal_value(data)

    def validate_placements(self, value: list[str]) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise serializers.ValidationError(f"each placement at most once; repeated: {', '.join(repeated)}")
        return value



def _slugs(value: object, *, most: int, longest: int, least: int = 0) -> list[str] | None:
    if type(value) is not list or not least <= len(value) <= most:
        return None
    for item in value:
        if type(item) is not str or len(item) > longest or not _SLUG.fullmatch(item):
            return None
    return value


def decision_input_fast(data: object) -> dict[str, Any] | None:
    """The validated input of a well-formed request body, or ``None`` to let ``DecisionInputSerializer`` judge it.

    The serializer costs about a quarter of a millisecond per call (DRF deep-copies its fields for each
    instance); a body every field of which is already exactly what it accepts gets the same values from
    this check. Anything else, errors included, goes through the serializer, so the API's answers are
    the serializer's."""
    if type(data) is not dict or not data.keys() <= _INPUT_FIELDS:
        return None
    user_id = data.get("user_id", "")
    if type(user_id) is not str or (user_id and not user_id_valid(user_id)):
        return None
    placements = _slugs(data.get("placements"), most=10, longest=64, least=1)
    categories = _slugs(data.get("categories", []), most=20, longest=100)
    device, explain = data.get("device", "other"), data.get("explain", False)
    if placements is None or len(set(placements)) != len(placements) or categories is None:
        return None
    if type(device) is not str or device not in DEVICES or type(explain) is not bool:
        return None
    return {"user_id": user_id, "placements": placements, "device": device, "categories": categories, "explain": explain}


def placements_unknown(names: list[str]) -> list[str]:
    """The names the site has no placement for, in the order given (none: ``[]``).

    From the in-process catalog (``Placement`` rows, rebuilt as the catalog is): no query per request."""
    from adsite.ads.catalog import catalog_current

    known = catalog_current().placement_sizes
    return [name for name in names if name not in known]
