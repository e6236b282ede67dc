"""``manage.py features_rebuild``: clear the online feature store and replay the stored events into it.

Repairs the Redis store (services mode) after a flush or a feature-definition change, or fills the
in-process store by hand. Events come from the app that stores them (``inference.signals.stored_events``: time order, bots excluded).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from inference.store import feature_store_rebuild


class Command(BaseCommand):
    help = "Rebuild the online feature store from the stored events."

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        events = feature_store_rebuild()
        self.stdout.write(f"replayed {events} events in {time.perf_counter() - started:.1f} s")
