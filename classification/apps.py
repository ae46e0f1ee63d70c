"""Classification app configuration."""

from django.apps import AppConfig


class ClassificationConfig(AppConfig):
    name = "classification"
    label = "classification"
    verbose_name = "Classification"
