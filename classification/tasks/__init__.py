"""Celery tasks of classification (autodiscovered as classification.tasks): classifying, datasets."""

from classification.tasks.classify import *  # noqa: F403
from classification.tasks.datasets import *  # noqa: F403
