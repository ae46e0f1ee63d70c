"""Core app configuration."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    label = "core"
    verbose_name = "Spotcheck core"

    def ready(self) -> None:
        from core import checks, signals  # noqa: F401  (registers system checks and signal receivers)
