"""Celery tasks of a promotion: plan the re-classification of older predictions, then run it chunk by chunk.

Thin: each loads by id and calls the computation in classification.reclassify; both are safe to run twice.
"""

from celery import shared_task

from classification.classifiers import ClassifierError
from classification.reclassify import RECLASSIFY_CHUNK, outdated_chunks, reclassify_chunk
from core.retry import RETRY

# Storage, network and database hiccups are retried by the one policy (core.retry.PolicyTask, every task's class).

__all__ = ["reclassify_chunk_task", "reclassify_plan", "reclassify_plan_task"]


def reclassify_plan(*, model_version_id: int, chunk_size: int = RECLASSIFY_CHUNK) -> int:
    """Enqueue chunks of outdated pictures for re-classification by the (still) active version."""
    planned = 0
    for chunk in outdated_chunks(model_version_id=model_version_id, chunk_size=chunk_size):
        reclassify_chunk_task.delay(model_version_id, chunk)
        planned += len(chunk)
    return planned


@shared_task(
    name="classification.reclassify_plan",
    bind=True,
)
def reclassify_plan_task(self, model_version_id: int) -> None:
    reclassify_plan(model_version_id=model_version_id)


@shared_task(
    name="classification.reclassify_chunk",
    bind=True,
)
def reclassify_chunk_task(self, model_version_id: int, image_ids: list[int]) -> None:
    try:
        reclassify_chunk(model_version_id=model_version_id, image_ids=image_ids)
    except ClassifierError as exc:
        # A model server that is briefly down: retry the chunk (pictures already done are skipped).
        if not exc.transient or self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=exc, countdown=RETRY.countdown(self.request.retries)) from exc
