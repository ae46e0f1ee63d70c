"""Celery task for bucket events: classify one object of our bucket (classify queue: it reads the object from
our own storage, then decodes and classifies it in this process, both stages here: sending stage 2 to its own
queue and waiting for it could deadlock; the fetch queue never decodes). Safe to run twice: a known picture is
never classified again."""

from __future__ import annotations

from celery import shared_task

from classification.bucket import BucketRefused, object_classify
from core.retry import RETRY

# Refusals that may go away (the store briefly unreachable); retried with the one policy (core.retry).
TRANSIENT = frozenset({"bucket_error", "bucket_unreachable"})


@shared_task(
    name="classification.bucket_object_classify",
    bind=True,
    ignore_result=True,
    soft_time_limit=120,
    time_limit=180,
)
def bucket_object_classify(self, uri: str) -> str | None:
    """Classify ``s3://bucket/key``; returns the refusal code when it is not a picture we read."""
    try:
        outcome = object_classify(uri=uri)
    except BucketRefused as exc:
        if exc.code in TRANSIENT and self.request.retries < self.max_retries:
            raise self.retry(exc=exc, countdown=RETRY.countdown(self.request.retries)) from exc
        return exc.code
    return outcome.error
