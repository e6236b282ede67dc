"""The one rule for a visitor's id, shared by every entry point (events, interests API, decisions API).

1-64 characters, none of them whitespace, a control character or ``/``. Why: the id is a first-party
anonymous id (a UUID from the identity cookie, ``demo-00001``) or an imported dataset's own id (numbers,
hashes, sometimes an e-mail address), so the rule refuses only what breaks somewhere: whitespace and
control characters (log lines, CSV, copy and paste), ``/`` (the id is a URL path segment of the
interests API). Everything else is a valid Redis key part and is escaped where it is shown. (Redis
Cluster: a ``}`` in an id moves the hash tag of ``u:{user_id}:...``, but the same way for all of that
user's keys, so they still share a slot.) Defined here because ``inference`` imports nothing from
``tracking`` or ``adsite``; those use it through ``inference.api``.
"""

from __future__ import annotations

import re
from typing import TypeGuard

USER_ID_MAX = 64
USER_ID_PATTERN = r"[^\s/\x00-\x1f\x7f-\x9f]{1,64}"
USER_ID_RULE = "must be 1-64 characters, without whitespace, control characters or '/'"
# the same, and no unpaired surrogate (JSON can carry one as an escape; it cannot be encoded as UTF-8). Left out
# of USER_ID_PATTERN, the OpenAPI schema's pattern, because JSON Schema regexes cannot name surrogates portably
_USER_ID = re.compile(r"[^\s/\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,64}")


def user_id_valid(value: object) -> TypeGuard[str]:
    """True when ``value`` is a ``str`` that follows the rule (``re.fullmatch``: a trailing newline fails)."""
    return type(value) is str and _USER_ID.fullmatch(value) is not None
