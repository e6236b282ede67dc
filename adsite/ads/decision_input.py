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
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from inference.api import USER_ID_RULE, user_id_valid
from inference.rest.fields import (
    ClosedSerializer,
    StrictBooleanField,
    StrictSlugField,
    StrictUserIdField,
    UniqueListField,
)

DEVICES = ("desktop", "mobile", "tablet", "other")
INPUT_FIELDS = ("user_id", "placements", "device", "categories", "explain")
_SLUG = re.compile(r"[-a-zA-Z0-9_]+")  # DRF's SlugField (allow_unicode=False)
_INPUT_FIELDS = frozenset(INPUT_FIELDS)


def placement_names() -> frozenset[str]:
    """The names of the site's placements, from the in-process catalog (``Placement`` rows, rebuilt as the
    catalog is): no query per request. What a decision may name, and the schema's enum for it."""
    from adsite.ads.catalog import catalog_current

    return frozenset(catalog_current().placement_sizes)


@extend_schema_serializer(component_name="AdDecisionInput")
class DecisionInputSerializer(ClosedSerializer):
    """What to decide: the visitor, the placements to fill, the page's device and categories."""

    user_id = StrictUserIdField(
        blank_means="an anonymous visitor", required=False, default="", help_text=USER_ID_RULE + "; empty: anonymous"
    )
    placements = UniqueListField(
        child=StrictSlugField(max_length=64, schema_enum=placement_names), min_length=1, max_length=10,
        item_name="placement", help_text="names of the site's placements, each at most once",
    )
    device = serializers.ChoiceField(choices=list(DEVICES), default="other")
    categories = serializers.ListField(child=StrictSlugField(max_length=100), max_length=20, default=list)
    explain = StrictBooleanField(default=False)


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
    """The names the site has no placement for (``placement_names``), in the order given (none: ``[]``)."""
    known = placement_names()
    return [name for name in names if name not in known]
