"""Hand-written parsing of the interests parameters (cheaper than a serializer on the hot path).

Each parser returns the value or raises :class:`BadParameter` naming the parameter and the problem;
the views turn that into a 400 with ``{"errors": {parameter: problem}}``.
"""

from __future__ import annotations

from typing import Any

TOP_DEFAULT = 10
TOP_MAX = 100
USER_ID_MAX = 128
BATCH_MAX = 100


class BadParameter(ValueError):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem

    def body(self) -> dict[str, Any]:
        return {"errors": {self.name: self.problem}}


def top_parse(raw: Any) -> int:
    """``top`` as given (callers use TOP_DEFAULT when it is absent); null or empty is an error."""
    if raw is None or isinstance(raw, bool):
        raise BadParameter("top", f"must be an integer between 1 and {TOP_MAX}")
    try:
        value = int(raw) if not isinstance(raw, float) or raw.is_integer() else None
    except (TypeError, ValueError):
        value = None
    if value is None or not 1 <= value <= TOP_MAX:
        raise BadParameter("top", f"must be an integer between 1 and {TOP_MAX}")
    return value


def user_id_parse(raw: Any, *, name: str = "user_id") -> str:
    # any non-empty string up to the limit: ids are opaque (an unknown one simply gets a cold start)
    if not isinstance(raw, str) or not raw:
        raise BadParameter(name, "must be a non-empty string")
    if len(raw) > USER_ID_MAX:
        raise BadParameter(name, f"must be at most {USER_ID_MAX} characters")
    return raw


def user_ids_parse(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise BadParameter("user_ids", f"must be a non-empty list of at most {BATCH_MAX} user ids")
    if len(raw) > BATCH_MAX:
        raise BadParameter("user_ids", f"must hold at most {BATCH_MAX} user ids")
    return [user_id_parse(item, name=f"user_ids[{index}]") for index, item in enumerate(raw)]
