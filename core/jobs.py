"""Job-like rows (an export, an evaluation, a parameter search): their status, how a worker claims one, and
how a run records its failure. Progress lives in our tables, never in a Celery result backend.

A job row has ``status``, ``progress``, ``error`` and ``finished_at``; a claimable one also ``started_at``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.db import models
from django.db.models import Q
from django.utils import timezone

T = TypeVar("T")
ERROR_MAX = 2000


class JobStatus(models.TextChoices):
    """Life of a background job whose progress lives in our tables (no Celery result backend)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def job_claim(*, model: type[models.Model], pk: int, lease_seconds: int, **reset) -> bool:
    """Mark a queued, failed or abandoned job running (``reset`` clears more fields); False when taken.

    A second delivery of the task while a worker is still on it does nothing, but one that comes after the
    worker died (running for longer than any run may last, ``lease_seconds``) takes over.
    """
    stale = timezone.now() - timedelta(seconds=lease_seconds)
    claimable = Q(status__in=[JobStatus.QUEUED, JobStatus.FAILED]) | Q(status=JobStatus.RUNNING, started_at__lt=stale)
    updated = model.objects.filter(claimable, pk=pk).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), progress=0, error="", **reset
    )
    return bool(updated)


def job_error(exc: BaseException) -> str:
    """What a failed job shows: the exception's type and message, capped."""
    return f"{type(exc).__name__}: {exc}"[:ERROR_MAX]


def job_run(*, rows: models.QuerySet, work: Callable[[], T], done: Callable[[T], dict] | None = None) -> T:
    """Run ``work`` for the claimed ``rows``: on success mark them done (100 %, plus the fields ``done``
    returns from the result); on any exception mark them failed with its message, and re-raise it so the
    task's retry policy still sees it."""
    try:
        result = work()
    except Exception as exc:
        rows.update(status=JobStatus.FAILED, error=job_error(exc), finished_at=timezone.now())
        raise
    rows.update(
        status=JobStatus.DONE, progress=100, finished_at=timezone.now(), **(done(result) if done is not None else {})
    )
    return result
