from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "adsite.dashboard"
    label = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Subscribe to tracking's announcements (``tracking.signals``)."""
        from adsite.dashboard import receivers
        from tracking.signals import visitor_deleted

        visitor_deleted.connect(receivers.on_visitor_deleted, dispatch_uid="dashboard.visitor_deleted")
