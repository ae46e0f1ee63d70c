"""Celery tasks: dataset export, evaluation and model promotion."""
