from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Subscribe to what inference announces and asks (``inference.api.store_rebuild_started``,
        ``stored_events_requested``)."""
        from inference.api import store_rebuild_started, stored_events_requested
        from tracking import receivers

        store_rebuild_started.connect(receivers.on_store_rebuild_started, dispatch_uid="tracking.store_rebuild")
        stored_events_requested.connect(
            receivers.on_stored_events_requested, dispatch_uid="tracking.stored_events_requested"
        )
