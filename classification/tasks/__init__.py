"""Celery tasks of classification (autodiscovered as classification.tasks): classifying, promotion."""

from classification.tasks.classify import *  # noqa: F403
from classification.tasks.promotion import *  # noqa: F403
