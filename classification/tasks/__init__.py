"""Celery tasks of classification (autodiscovered as classification.tasks): classifying, bucket events,
promotion."""

from classification.tasks.bucket import *  # noqa: F403
from classification.tasks.classify import *  # noqa: F403
from classification.tasks.promotion import *  # noqa: F403
