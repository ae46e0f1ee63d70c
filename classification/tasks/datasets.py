"""Celery tasks: dataset export, evaluation, parameter search and re-classification after a promotion.

Thin: each loads by id and calls a service; the services are idempotent and record progress in our tables.
"""

from botocore.exceptions import ConnectionError as BotoConnectionError
from celery import shared_task

# Storage and database hiccups worth another try; anything else fails the job with its message.
TRANSIENT = (BotoConnectionError, ConnectionError, TimeoutError)
LONG = {"soft_time_limit": 3 * 3600, "time_limit": 3 * 3600 + 300}

__all__ = ["export_dataset_task"]


@shared_task(bind=True, autoretry_for=TRANSIENT, retry_backoff=10, retry_backoff_max=300, max_retries=3, **LONG)
def export_dataset_task(self, export_id: int) -> None:
    from classification.export import export_run

    export_run(export_id=export_id)
