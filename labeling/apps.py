"""Labeling app configuration."""

from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    label = "labeling"
    verbose_name = "Labeling"
