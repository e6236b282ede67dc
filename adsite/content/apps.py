from django.apps import AppConfig


class ContentConfig(AppConfig):
    name = "adsite.content"
    label = "content"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Answer what inference asks of the site (``inference.api.categories_requested``)."""
        from adsite.content import receivers
        from inference.api import categories_requested

        categories_requested.connect(
            receivers.on_categories_requested, dispatch_uid="content.categories_requested"
        )
