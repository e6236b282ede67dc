"""The decisions API's input, checked fast: the common well-formed body without DRF's serializer.

``DecisionsView.InputSerializer`` stays the reference (it words every error); this module holds what it and
the fast check share (the fields, the devices; the user id rule is ``inference.api.user_id_valid``, the one
of every endpoint) and the fast check itself. Both take JSON types exactly (``user_id`` a string,
``explain`` a boolean, ``placements``/``categories`` lists of strings), refuse unknown fields and
duplicate placements. Whether each placement exists is the view's check, from the catalog.
"""

from __future__ import annotations

import re
from typing import Any

from inference.api import user_id_valid

DEVICES = ("desktop", "mobile", "tablet", "other")
INPUT_FIELDS = ("user_id", "placements", "device", "categories", "explain")
_SLUG = re.compile(r"[-a-zA-Z0-9_]+")  # DRF's SlugField (allow_unicode=False)
_INPUT_FIELDS = frozenset(INPUT_FIELDS)


def _slugs(value: object, *, most: int, longest: int, least: int = 0) -> list[str] | None:
    if type(value) is not list or not least <= len(value) <= most:
        return None
    for item in value:
        if type(item) is not str or len(item) > longest or not _SLUG.fullmatch(item):
            return None
    return value


def decision_input_fast(data: object) -> dict[str, Any] | None:
    """The validated input of a well-formed request body, or ``None`` to let ``InputSerializer`` judge it.

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
