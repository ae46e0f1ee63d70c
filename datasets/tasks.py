"""Celery tasks of datasets: export, evaluation and parameter search (their names predate the app).

Thin: each loads by id and calls the computation, which is idempotent and records progress in our tables.
"""

from celery import shared_task

from datasets.evaluation import evaluation_run
from datasets.export import export_run
from datasets.importing import import_run
from datasets.learning import training_run
from datasets.training import search_run

# Storage, network and database hiccups are retried by the one policy (core.retry.PolicyTask, every task's
# class); anything else fails the job with its message.
LONG = {"soft_time_limit": 3 * 3600, "time_limit": 3 * 3600 + 300}

__all__ = [
    "evaluate_models_task",
    "export_dataset_task",
    "import_dataset_task",
    "parameter_search_task",
    "train_model_task",
]


@shared_task(
    name="classification.export_dataset",
    bind=True,
    **LONG,
)
def export_dataset_task(self, export_id: int) -> None:
    export_run(export_id=export_id)


@shared_task(
    name="classification.evaluate_models",
    bind=True,
    **LONG,
)
def evaluate_models_task(self, evaluation_ids: list[int]) -> None:
    evaluation_run(evaluation_ids=evaluation_ids)


@shared_task(
    name="classification.parameter_search",
    bind=True,
    **LONG,
)
def parameter_search_task(self, search_id: int) -> None:
    search_run(search_id=search_id)


@shared_task(
    name="datasets.train_model",
    bind=True,
    **LONG,
)
def train_model_task(self, run_id: int) -> None:
    training_run(run_id=run_id)


@shared_task(
    name="datasets.import_dataset",
    bind=True,
    **LONG,
)
def import_dataset_task(self, import_id: int) -> None:
    import_run(import_id=import_id)
