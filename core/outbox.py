"""The one way to request background work from a transaction: ``enqueue_on_commit``; and ``enqueue_now`` for
work requested outside any transaction (what it reads is committed already) that the caller waits for.

The request is written to the ``TaskOutbox`` table inside the caller's transaction (so it is as durable as the
rows it is about) and sent to the broker after commit. When the broker is unreachable the caller still gets
its normal answer: the row stays, and the periodic ``outbox_deliver`` sends it once the broker is back. Tasks
are safe to run twice, so a row sent by both (a send that succeeded but could not be recorded) costs nothing.
"""

import contextlib
import logging
from datetime import datetime, timedelta

from celery import Task
from celery.exceptions import Retry
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from core.models import TaskOutbox

log = logging.getLogger(__name__)

# What "the broker did not take the message" looks like: kombu wraps connection errors in OperationalError;
# the others are a socket failing outside its wrapping.
SEND_ERRORS = (BrokerError, ConnectionError, TimeoutError, OSError)


def enqueue_on_commit(task: Task, *args, countdown: float | None = None, **kwargs) -> None:
    """Record ``task(*args, **kwargs)`` in the outbox now and send it after the transaction commits; with
    ``countdown`` (seconds), to run no sooner than that after now, however late the sweep sends it."""
    not_before = timezone.now() + timedelta(seconds=countdown) if countdown else None
    row = TaskOutbox.objects.create(task=task.name, args=list(args), kwargs=kwargs, not_before=not_before)
    transaction.on_commit(lambda: _send(row_id=row.pk, task=task, args=args, kwargs=kwargs, eta=not_before))


def enqueue_now(task: Task, *args, **kwargs) -> None:
    """Send ``task(*args, **kwargs)`` now; when the broker does not take it, park it in the outbox for the sweep
    instead of failing the caller (who waits for its outcome and answers what it has by then). Only outside a
    transaction the task depends on: it may run at once."""
    if task.app.conf.task_always_eager:
        _run_eagerly(task, args, kwargs)
        return
    try:
        task.delay(*args, **kwargs)
    except SEND_ERRORS as exc:
        log.warning("broker unreachable; the outbox sweep will send it", extra={"task": task.name, "error": str(exc)})
        TaskOutbox.objects.create(task=task.name, args=list(args), kwargs=kwargs, attempts=1, last_error=str(exc)[:300])


def _run_eagerly(task: Task, args, kwargs) -> None:
    """Eager (tests, demo): the task runs here and now and its own errors surface, not parked. A retry it asks
    for has no worker to wait for it: logged and dropped, as a worker drops one past the policy's cap."""
    try:
        task.delay(*args, **kwargs)
    except Retry as retry:
        log.warning("an eager task asked for a retry; dropped", extra={"task": task.name, "retry": str(retry)})


def _send(*, row_id: int, task: Task, args, kwargs, eta: datetime | None = None) -> bool:
    if task.app.conf.task_always_eager:
        TaskOutbox.objects.filter(pk=row_id).delete()
        _run_eagerly(task, args, kwargs)
        return True
    try:
        task.apply_async(args, kwargs, eta=eta if eta is not None and eta > timezone.now() else None)
    except SEND_ERRORS as exc:
        log.warning("broker unreachable; the outbox sweep will send it", extra={"task": task.name, "error": str(exc)})
        with contextlib.suppress(Exception):  # the row is there; bookkeeping must not fail the request
            TaskOutbox.objects.filter(pk=row_id).update(attempts=F("attempts") + 1, last_error=str(exc)[:300])
        return False
    try:
        TaskOutbox.objects.filter(pk=row_id).delete()
    except Exception:  # noqa: BLE001 - sent; at worst the sweep sends it again (tasks are idempotent)
        log.warning("sent but not recorded; the sweep will send it again", extra={"task": task.name})
    return True


def outbox_deliver(*, older_than: timedelta = timedelta(seconds=30), limit: int = 500) -> int:
    """Send the messages still in the outbox (oldest first) that were requested more than ``older_than`` ago;
    stops at the first broker error (it is still down). Returns how many were sent."""
    from celery import current_app as app

    cutoff = timezone.now() - older_than
    rows = list(TaskOutbox.objects.filter(created_at__lte=cutoff).order_by("id")[:limit])
    sent = 0
    for row in rows:
        task = app.tasks.get(row.task)
        if task is None:
            log.error("outbox row names an unknown task", extra={"task": row.task, "row_id": row.pk})
            TaskOutbox.objects.filter(pk=row.pk).update(last_error="unknown task")
            continue
        if not _send(row_id=row.pk, task=task, args=tuple(row.args), kwargs=row.kwargs, eta=row.not_before):
            break
        sent += 1
    return sent
