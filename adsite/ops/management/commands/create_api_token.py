"""``manage.py create_api_token NAME``: a new API token for a service client (created if new).

Prints the token (the only time it is shown). The service user has no password and no staff rights:
it can call the token-authenticated APIs (interests, events), not the staff ones. An existing token of
that user is replaced, so running it again rotates the token.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create (or rotate) the API token of service client NAME and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="service client name, e.g. ads-frontend")

    def handle(self, *args: Any, **options: Any) -> None:
        name = f"service-{options['name']}"
        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(
                username=name, defaults={"is_active": True}
            )
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            Token.objects.filter(user=user).delete()
            token = Token.objects.create(user=user)
        self.stderr.write(f"{'created' if created else 'rotated token of'} service user {name}")
        self.stdout.write(token.key)
