"""Datasets app configuration: the offline side of classification (exports, evaluation, training)."""

from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "datasets"
    label = "datasets"
    verbose_name = "Datasets and model quality"
