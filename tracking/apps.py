from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Subscribe to what inference announces (``inference.api.store_rebuild_started``)."""
        from inference.api import store_rebuild_started
        from tracking import receivers

        store_rebuild_started.connect(receivers.on_store_rebuild_started, dispatch_uid="tracking.store_rebuild")
