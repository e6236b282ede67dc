from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "adsite.ops"
    label = "ops"

    def ready(self) -> None:
        from adsite.ops import (
            auth,  # noqa: F401  (registers the deploy check)
            openapi,  # noqa: F401  (registers the token scheme's schema extension)
        )
