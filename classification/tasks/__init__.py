"""Celery tasks of classification (autodiscovered as classification.tasks): classifying, bucket events, datasets."""

from classification.tasks.bucket import *  # noqa: F403
from classification.tasks.classify import *  # noqa: F403
from classification.tasks.datasets import *  # noqa: F403
