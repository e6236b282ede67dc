from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "inference.registry"
    label = "inference_registry"
    verbose_name = "Model registry"
    default_auto_field = "django.db.models.BigAutoField"
