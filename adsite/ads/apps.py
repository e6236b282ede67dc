from django.apps import AppConfig


class AdsConfig(AppConfig):
    name = "adsite.ads"
    label = "ads"
    verbose_name = "Ads"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Subscribe to what the lower apps announce (``tracking.signals``, ``adsite.content.signals``)."""
        from adsite.ads import receivers
        from adsite.content.signals import placements_requested
        from tracking.signals import ad_events_accepted, visitor_deleted

        ad_events_accepted.connect(receivers.on_ad_events_accepted, dispatch_uid="ads.ad_events_accepted")
        visitor_deleted.connect(receivers.on_visitor_deleted, dispatch_uid="ads.visitor_deleted")
        placements_requested.connect(receivers.on_placements_requested, dispatch_uid="ads.placements_requested")
