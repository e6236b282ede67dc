"""Inference asks the apps above it for the stored events and the site's categories through its own
signals; tracking and the content app answer (connected in their ``apps.py``), no dotted path in the
settings names them."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from inference.signals import site_categories, stored_events, stored_events_requested
from tests.dashboard.conftest import ingest, make_event

pytestmark = pytest.mark.django_db


def test_training_reads_the_events_table_through_trackings_receiver(settings) -> None:
    settings.TRACKING = {**settings.TRACKING, "BUFFER": "database"}  # accepted events go to the table at once
    ingest([make_event(user_id="reader", item_id=f"i{n}", categories=["travel"]) for n in range(3)])
    ingest([make_event(user_id="crawler", item_id="b")], bot=True)
    events = [event for chunk in stored_events() for event in chunk]
    assert [(e.user_id, e.item_id) for e in events] == [("reader", "i0"), ("reader", "i1"), ("reader", "i2")]


def test_the_categories_are_the_content_apps_taxonomy() -> None:
    from adsite.content.models import Category

    Category.objects.create(slug="gardening", name="Gardening")
    assert "gardening" in site_categories()


def test_nobody_answering_is_a_configuration_error_not_an_empty_answer() -> None:
    stored_events_requested.disconnect(dispatch_uid="tracking.stored_events_requested")
    try:
        with pytest.raises(ImproperlyConfigured, match="stored_events_requested: 0 receivers answered"):
            stored_events()
    finally:
        from tracking.receivers import on_stored_events_requested

        stored_events_requested.connect(
            on_stored_events_requested, dispatch_uid="tracking.stored_events_requested"
        )


def test_the_settings_name_no_source_by_dotted_path() -> None:
    assert not {"EVENT_SOURCE", "CATEGORY_SOURCE"} & set(settings.INFERENCE)
