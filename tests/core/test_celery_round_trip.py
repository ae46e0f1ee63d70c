"""A task enqueued after commit is executed by a real worker through the configured broker."""

import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from config.celery import app
from core.tasks import ping


@pytest.fixture
def real_worker():
    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"):
            yield
    finally:
        app.conf.task_always_eager = True


@pytest.mark.django_db(transaction=True)
def test_task_enqueued_on_commit_runs_in_a_real_worker(real_worker):
    token = uuid.uuid4().hex
    with transaction.atomic():
        transaction.on_commit(lambda: ping.delay(token=token))
        assert cache.get(f"ping:{token}") is None  # nothing is sent before the commit

    assert _wait_for_ping(token), f"no worker ran the task via {settings.CELERY_BROKER_URL}"


def _wait_for_ping(token: str, timeout: float = 20) -> bool:
    """Poll the worker's mark (an observable condition with a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while cache.get(f"ping:{token}") is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return cache.get(f"ping:{token}") == "pong"


@pytest.mark.django_db(transaction=True)
def test_task_is_not_sent_when_the_transaction_rolls_back(real_worker):
    token = uuid.uuid4().hex
    with pytest.raises(RuntimeError), transaction.atomic():
        transaction.on_commit(lambda: ping.delay(token=token))
        raise RuntimeError("rollback")
    # No sleep: a committed ping sent afterwards is consumed after anything sent before it (one solo worker,
    # one queue); once it has run, the rolled-back one would have run too.
    marker = uuid.uuid4().hex
    with transaction.atomic():
        transaction.on_commit(lambda: ping.delay(token=marker))
    assert _wait_for_ping(marker), "the worker did not run the committed ping"
    assert cache.get(f"ping:{token}") is None
