"""Classification app configuration."""

from django.apps import AppConfig


class ClassificationConfig(AppConfig):
    name = "classification"
    label = "classification"
    verbose_name = "Classification"

    def ready(self) -> None:
        from classification import checks  # noqa: F401  (registers the fetch allow-list check)
