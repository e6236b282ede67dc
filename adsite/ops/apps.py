from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "adsite.ops"
    label = "ops"
