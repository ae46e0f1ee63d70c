"""Celery tasks of the pipeline: stage 1 for URLs announced from outside (Event Grid blobs; fetch queue),
stage 2 for one picture (the API's batches, uploads and bucket keys, those URLs; classify queue) and
re-classification after a promotion. Scrapes run their stages through ``sitemaps.tasks``.

Thin: each loads by id and calls a service; all are safe to run twice (a known picture is never classified
again) and retry only named transient errors, with capped backoff.
"""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from classification import services
from classification.classifiers import ClassifierError
from core.retry import RETRY


@shared_task(
    name="classification.urls_fetch",
    bind=True,
    ignore_result=True,
    soft_time_limit=240,
    time_limit=300,
)
def urls_fetch(self, urls: list[str]) -> int:
    """Stage 1 for a few URLs (the fetch queue; never decodes): download and key them, send each new
    picture to ``image_classify``. URLs that failed transiently are retried alone, with backoff. Returns
    how many pictures went to the classify queue."""
    checks = services.urls_check(urls=urls)
    pending = sorted({c.image_id for c in checks.values() if c.pending})
    for image_id in pending:
        transaction.on_commit(lambda image_id=image_id: image_classify.delay(image_id))
    transient = [c.url for c in checks.values() if c.error and c.transient]
    if transient and self.request.retries < self.max_retries:
        wait = services.checks_retry_after(checks=checks.values())
        raise self.retry(args=(transient,), countdown=RETRY.countdown(self.request.retries, retry_after=wait))
    return len(pending)


@shared_task(
    name="classification.image_classify",
    bind=True,
    ignore_result=True,
    soft_time_limit=60,
    time_limit=90,
)
def image_classify(self, image_id: int) -> bool:
    """Stage 2 for one picture staged by stage 1 (the API's batches send one task per new picture, so the
    classify processes share a batch; its uploads and bucket keys one each). Returns whether it was
    classified now. A transiently failing backend leaves the picture without values (an API request waiting
    for it answers with the defaults) and is retried with backoff (never sooner than a throttling backend's
    Retry-After)."""
    result = services.images_classify(image_ids=[image_id])[image_id]
    if result.transient and self.request.retries < self.max_retries:
        raise self.retry(countdown=RETRY.countdown(self.request.retries, retry_after=result.retry_after))
    return result.status == "classified"


@shared_task(
    name="classification.image_reclassify",
    bind=True,
    ignore_result=True,
    soft_time_limit=60,
    time_limit=90,
)
def image_reclassify(self, image_id: int, model_version_id: int | None = None) -> bool:
    """Re-run a model version on a stored picture (after a promotion)."""
    try:
        return services.image_reclassify(image_id=image_id, model_version_id=model_version_id)
    except ClassifierError as exc:
        if exc.transient:
            wait = RETRY.countdown(self.request.retries, retry_after=exc.retry_after)
            raise self.retry(exc=exc, countdown=wait) from exc
        raise
