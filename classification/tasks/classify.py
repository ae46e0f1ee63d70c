"""Celery tasks of the classify queue: stage 2 of the pipeline for one picture (the API's batches) and
re-classification after a promotion. Scrapes run stage 2 through ``sitemaps.tasks.scrape_pictures_classify``.

Thin: each loads by id and calls a service; all are safe to run twice (a known picture is never classified
again) and retry only named transient errors, with capped backoff.
"""

from __future__ import annotations

import random

from celery import shared_task

from classification import services
from classification.classifiers import ClassifierError

MAX_RETRIES = 5
BACKOFF_BASE = 10  # seconds
BACKOFF_CAP = 600


def backoff(retries: int) -> float:
    """Exponential backoff with full jitter, capped (so retries of a batch do not arrive together)."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**retries))


@shared_task(
    name="classification.image_classify",
    bind=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=60,
    time_limit=90,
)
def image_classify(self, image_id: int) -> bool:
    """Stage 2 for one picture staged by the fetch stage (the API's batches send one task per new picture,
    so the classify processes share a batch). Returns whether it was classified now. A transiently failing
    backend leaves the picture without values (an API request waiting for it answers with the defaults)
    and is retried with backoff."""
    result = services.images_classify(image_ids=[image_id])[image_id]
    if result.transient and self.request.retries < self.max_retries:
        raise self.retry(countdown=backoff(self.request.retries))
    return result.status == "classified"


@shared_task(
    name="classification.image_reclassify",
    bind=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=60,
    time_limit=90,
)
def image_reclassify(self, image_id: int, model_version_id: int | None = None) -> bool:
    """Re-run a model version on a stored picture (after a promotion)."""
    try:
        return services.image_reclassify(image_id=image_id, model_version_id=model_version_id)
    except ClassifierError as exc:
        if exc.transient:
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
        raise
