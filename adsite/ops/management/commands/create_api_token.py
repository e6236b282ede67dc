"""``manage.py create_api_token NAME``: a new API token for a service client (created if new).

Prints the token (the only time it is shown). The service user has no password, so it cannot log in
to the dashboard or the admin. Without ``--staff`` it can call the token-authenticated APIs (interests,
events, ad decisions), not the staff ones; with ``--staff`` it may also call the staff APIs (the model
registry, deleting a visitor's data), e.g. from a deployment script. An existing token of that user is
replaced, so running it again rotates the token (and sets the staff right as asked).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create (or rotate) the API token of service client NAME and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="service client name, e.g. ads-frontend")
        parser.add_argument(
            "--staff",
            action="store_true",
            help="let this client call the staff APIs too (model registry, visitor data deletion)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = f"service-{options['name']}"
        user_model = get_user_model()
        longest = user_model._meta.get_field(user_model.USERNAME_FIELD).max_length - len("service-")
        try:
            if not 1 <= len(options["name"]) <= longest:  # the username column's length
                raise ValidationError("too short or too long")
            user_model.username_validator(name)
        except ValidationError:
            raise CommandError(
                f"NAME must be 1-{longest} letters, digits or @ . + - _ (the service user is service-NAME)"
            ) from None
        with transaction.atomic():
            user, created = user_model.objects.get_or_create(
                username=name, defaults={"is_active": True}
            )
            if created:
                user.set_unusable_password()
            user.is_staff = bool(options["staff"])
            user.save(update_fields=["password", "is_staff"] if created else ["is_staff"])
            Token.objects.filter(user=user).delete()
            token = Token.objects.create(user=user)
        staff = " (staff APIs allowed)" if options["staff"] else ""
        self.stderr.write(f"{'created' if created else 'rotated token of'} service user {name}{staff}")
        self.stdout.write(token.key)
