"""``manage.py delete_user USER_ID``: delete one visitor's events, quarantine rows, features and derived data."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from tracking.privacy import user_data_delete


class Command(BaseCommand):
    help = "Delete everything held about one visitor (the privacy operation)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_id", help="the visitor's first-party anonymous id")

    def handle(self, *args: object, **options: object) -> None:
        user_id = str(options["user_id"]).strip()
        if not user_id:
            self.stderr.write("user_id must not be empty")
            raise SystemExit(2)
        result = user_data_delete(user_id=user_id)
        self.stdout.write(f"deleted {result.events} events and {result.quarantined} quarantined rows of {user_id}")
