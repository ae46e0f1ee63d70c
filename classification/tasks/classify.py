"""Celery tasks: classify URLs in chunks on the fetch queue, new pictures on the classify queue.

Thin: each loads by id (a URL is its own id) and calls a service; all are safe to run twice (a known
picture is never classified again) and retry only named transient errors, with capped backoff.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction

from classification import services
from classification.classifiers import ClassifierError
from core.outbox import enqueue_on_commit
from core.retry import RETRY


def backoff(retries: int, retry_after: float | None = None) -> float:
    """The one policy's wait (core.retry): capped exponential backoff with full jitter, or Retry-After."""
    return RETRY.countdown(retries, retry_after=retry_after)


def classifier_countdown(exc: ClassifierError, retries: int) -> float:
    """The backoff, but never sooner than the Retry-After a throttling backend asked for (capped)."""
    retry_after = min(float(exc.retry_after), RETRY.retry_after_cap) if exc.retry_after else None
    return backoff(retries, retry_after)


@shared_task(name="classification.urls_classify_batch", ignore_result=True, soft_time_limit=60, time_limit=90)
def urls_classify_batch(urls: list[str], chunk_size: int | None = None) -> int:
    """Fan a batch of URLs out in chunks; returns how many chunks were sent."""
    size = chunk_size or settings.SPOTCHECK_CLASSIFY_CHUNK
    unique = list(dict.fromkeys(urls))
    chunks = [unique[i : i + size] for i in range(0, len(unique), size)]
    for chunk in chunks:
        urls_classify_chunk.delay(chunk)
    return len(chunks)


@shared_task(
    name="classification.urls_classify_chunk",
    bind=True,
    ignore_result=True,
    soft_time_limit=240,
    time_limit=300,
)
def urls_classify_chunk(self, urls: list[str]) -> dict:
    """Key and download a chunk concurrently; new pictures go to the classify queue.

    URLs that failed transiently (timeouts, connection errors, 429/5xx) are retried alone, with backoff.
    """
    checks = services.urls_check(urls=urls, classify=False)
    pending = sorted({c.image_id for c in checks.values() if c.pending and c.image_id})
    for image_id in pending:
        transaction.on_commit(lambda image_id=image_id: image_classify.delay(image_id))
    transient = [c.url for c in checks.values() if c.error and c.transient]
    if transient and self.request.retries < self.max_retries:
        waits = [c.retry_after for c in checks.values() if c.error and c.transient and c.retry_after is not None]
        raise self.retry(args=(transient,), countdown=backoff(self.request.retries, max(waits, default=None)))
    return {"checked": len(checks), "pending": len(pending), "transient": len(transient)}


@shared_task(
    name="classification.image_classify",
    bind=True,
    ignore_result=True,
    soft_time_limit=60,
    time_limit=90,
)
def image_classify(self, image_id: int) -> bool:
    """Classify one pending picture; a transiently failing backend is retried, then yields no value."""
    try:
        return services.image_classify(image_id=image_id)
    except ClassifierError as exc:
        if exc.transient:
            raise self.retry(exc=exc, countdown=classifier_countdown(exc, self.request.retries)) from exc
        raise


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
            raise self.retry(exc=exc, countdown=classifier_countdown(exc, self.request.retries)) from exc
        raise


def urls_enqueue(*, urls: list[str]) -> None:
    """Classify URLs in the background once the current transaction commits (through the outbox)."""
    unique = list(dict.fromkeys(urls))
    if unique:
        enqueue_on_commit(urls_classify_batch, unique)
