"""The decisions API's input: one definition, ``DecisionInputSerializer``, checked two ways that cannot differ.

The OpenAPI schema is generated from the serializer; ``decision_input_fast`` is that same schema compiled
(a few microseconds), and the serializer words the errors of what the schema refuses. Both take JSON types
exactly (``user_id`` a string, ``explain`` a boolean, ``placements``/``categories`` lists of strings),
refuse unknown fields and repeated placements; the user id rule is ``inference.api``'s, the one of every
endpoint. Whether each placement exists is the view's check, from the catalog (``placement_names``, also
the schema's enum).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from adsite.ops.openapi import body_schema_check
from inference.api import (
    USER_ID_RULE,
    ClosedSerializer,
    StrictBooleanField,
    StrictSlugField,
    StrictUserIdField,
    UniqueListField,
)

DEVICES = ("desktop", "mobile", "tablet", "other")


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


_schema_valid = body_schema_check(DecisionInputSerializer)
_OPTIONAL = tuple((name, field) for name, field in DecisionInputSerializer().fields.items() if not field.required)


def decision_input_fast(data: object) -> dict[str, Any] | None:
    """The validated input of a body the published schema accepts, or ``None`` to let the serializer judge it.

    The check is the OpenAPI schema generated from ``DecisionInputSerializer`` (``adsite.ops.openapi``),
    compiled: what it accepts is what the schema states, with the serializer's defaults filled in. The
    serializer itself costs about a quarter of a millisecond per call (DRF deep-copies its fields for
    each instance); it answers only the bodies the schema refuses, wording each error."""
    if type(data) is not dict or not _schema_valid(data):
        return None
    values = {name: field.get_default() for name, field in _OPTIONAL if name not in data}
    values.update(data)
    return values


def placements_unknown(names: list[str]) -> list[str]:
    """The names the site has no placement for (``placement_names``), in the order given (none: ``[]``).
    While the catalog cannot be read (the database down before this process's first decision), none is
    called unknown: each gets a house ad rather than the client a wrong 400."""
    from adsite.ads.catalog import catalog_current

    catalog = catalog_current()
    if catalog.unavailable:
        return []
    return [name for name in names if name not in catalog.placement_sizes]
