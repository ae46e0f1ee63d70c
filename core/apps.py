"""Core app configuration."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    label = "core"
    verbose_name = "Spotcheck core"

    def ready(self) -> None:
        from core import signals  # noqa: F401  (registers signal receivers)
