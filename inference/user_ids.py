"""The one rule for a visitor's id, shared by every entry point (events, interests API, decisions API).

1-64 characters, each an ASCII letter, digit, ``.``, ``_``, ``:`` or ``-``. Why this set: the id is a
first-party anonymous id (a UUID from the identity cookie, ``demo-00001``, a dataset's numeric id), it
appears in Redis keys ``u:{user_id}:...`` whose ``{...}`` is the Redis Cluster hash tag (a ``{`` or ``}``
in the id would move the tag), in URL paths (no ``/``, no escapes) and in log lines (no control
characters). Defined here because ``inference`` imports nothing from ``tracking`` or ``adsite``; those
use it through ``inference.api``.
"""

from __future__ import annotations

import re
from typing import TypeGuard

USER_ID_MAX = 64
USER_ID_PATTERN = r"[A-Za-z0-9._:-]{1,64}"
USER_ID_RULE = "must be 1-64 characters, each an ASCII letter, digit, '.', '_', ':' or '-'"
_USER_ID = re.compile(USER_ID_PATTERN)


def user_id_valid(value: object) -> TypeGuard[str]:
    """True when ``value`` is a ``str`` that follows the rule (``re.fullmatch``: a trailing newline fails)."""
    return type(value) is str and _USER_ID.fullmatch(value) is not None
