"""The demo's ``admin`` / ``admin`` account must not open a production site.

``make run`` (DEBUG) creates a staff account ``admin`` with the password ``admin`` (or
``$ADSITE_ADMIN_PASSWORD``). A database made that way and then served with ``DJANGO_DEBUG=0`` would
keep it: outside DEBUG, ``DemoPasswordRefusedBackend`` refuses the password ``admin`` for every account
(logged as ``ops.demo_password_refused``), and the deploy check ``adsite.E001`` (``manage.py check
--deploy``) names the accounts that still have it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core import checks
from django.http import HttpRequest

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "admin"


class DemoPasswordRefusedBackend(ModelBackend):
    """Django's model backend, refusing the demo password outside DEBUG."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if password == DEMO_PASSWORD and not settings.DEBUG:
            logger.warning("ops.demo_password_refused", extra={"username": username})
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


@checks.register(checks.Tags.security, deploy=True)
def demo_password_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check --deploy``: accounts whose password is still the demo's."""
    from django.contrib.auth import get_user_model
    from django.db import DatabaseError

    try:
        users = list(get_user_model().objects.filter(is_active=True, is_staff=True).only("username", "password"))
    except DatabaseError:  # no tables yet: nothing to check
        return []
    weak = [user.username for user in users if user.check_password(DEMO_PASSWORD)]
    if not weak:
        return []
    return [
        checks.Error(
            f"staff accounts with the demo password 'admin': {', '.join(sorted(weak))}",
            hint="set a real password (manage.py changepassword NAME); outside DEBUG it is refused at login",
            id="adsite.E001",
        )
    ]
