"""Celery tasks: dataset export, evaluation, parameter search and re-classification after a promotion.

Thin: each loads by id and calls a service; the services are idempotent and record progress in our tables.
"""

from celery import shared_task

from core.retry import RETRY

# Storage, network and database hiccups are retried by the one policy (core.retry.PolicyTask, every task's
# class); anything else fails the job with its message.
LONG = {"soft_time_limit": 3 * 3600, "time_limit": 3 * 3600 + 300}

__all__ = [
    "evaluate_models_task",
    "export_dataset_task",
    "parameter_search_task",
    "reclassify_chunk_task",
    "reclassify_plan_task",
]


@shared_task(
    name="classification.export_dataset",
    bind=True,
    **LONG,
)
def export_dataset_task(self, export_id: int) -> None:
    from classification.export import export_run

    export_run(export_id=export_id)


@shared_task(
    name="classification.evaluate_models",
    bind=True,
    **LONG,
)
def evaluate_models_task(self, evaluation_ids: list[int]) -> None:
    from classification.evaluation import evaluation_run

    evaluation_run(evaluation_ids=evaluation_ids)


@shared_task(
    name="classification.parameter_search",
    bind=True,
    **LONG,
)
def parameter_search_task(self, search_id: int) -> None:
    from classification.training import search_run

    search_run(search_id=search_id)


@shared_task(
    name="classification.reclassify_plan",
    bind=True,
)
def reclassify_plan_task(self, model_version_id: int) -> None:
    from classification.training import reclassify_plan

    reclassify_plan(model_version_id=model_version_id)


@shared_task(
    name="classification.reclassify_chunk",
    bind=True,
)
def reclassify_chunk_task(self, model_version_id: int, image_ids: list[int]) -> None:
    from classification.classifiers import ClassifierError
    from classification.training import reclassify_chunk

    try:
        reclassify_chunk(model_version_id=model_version_id, image_ids=image_ids)
    except ClassifierError as exc:
        # A model server that is briefly down: retry the chunk (pictures already done are skipped).
        if not exc.transient or self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=exc, countdown=RETRY.countdown(self.request.retries)) from exc
