"""A Celery worker keeps its database connection from task to task, as the web keeps it from request to
request, and drops it when Django would (too old, or broken)."""

import time

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from config.celery import app, database_connections_recycle
from core.tasks import outbox_deliver


def _between_tasks() -> None:
    """What a worker runs after one task and before the next: Celery's Django fixup, then ours."""
    fixup = DjangoWorkerFixup(app)
    fixup.on_task_postrun(sender=outbox_deliver)
    database_connections_recycle(sender=outbox_deliver)
    fixup.on_task_prerun(sender=outbox_deliver)
    database_connections_recycle(sender=outbox_deliver)


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_between_tasks():
    connection.ensure_connection()
    opened = connection.connection
    _between_tasks()
    assert connection.connection is opened


@pytest.mark.django_db(transaction=True)
def test_a_worker_drops_a_connection_older_than_its_max_age():
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1  # CONN_MAX_AGE has passed
    _between_tasks()
    assert connection.connection is None
