"""Requests for dataset work: each creates (or resets) its job rows and enqueues the task after commit.

The work itself is computed in datasets.export / evaluation / training, which the tasks import; promotion of
a model version is classification's (classification.promotion).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from classification.models import ModelVersion
from core.jobs import JobStatus
from core.outbox import enqueue_on_commit
from datasets.evaluation import evaluations_queue
from datasets.export import ExportParams, last_done_export
from datasets.learning import MAX_CANDIDATES, MIN_CANDIDATES
from datasets.learning import TrainingError as LearningError
from datasets.models import DatasetExport, DatasetImport, Evaluation, ParameterSearch, TrainingRun
from datasets.tasks import (
    evaluate_models_task,
    export_dataset_task,
    import_dataset_task,
    parameter_search_task,
    train_model_task,
)
from datasets.training import SEARCH_SPACE, TrainingError


@transaction.atomic
def export_request(
    *,
    params: ExportParams,
    manifest_only: bool = False,
    user: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> DatasetExport:
    """Create a queued export (its snapshot time fixed now) and enqueue it after commit."""
    snapshot_at = timezone.now()
    if params.since_last_export:
        previous = last_done_export(attribute=params.attribute, before=snapshot_at)
        # With no previous export "since the last export" means everything.
        since = previous.snapshot_at.isoformat() if previous else None
        params = ExportParams.from_json({**params.as_json(), "since": since})
    export = DatasetExport.objects.create(
        attribute=params.attribute,
        params=params.as_json(),
        manifest_only=manifest_only,
        snapshot_at=snapshot_at,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    if enqueue:
        enqueue_on_commit(export_dataset_task, export.pk)
    return export


@transaction.atomic
def evaluation_request(
    *, export: DatasetExport, model_versions: Sequence[ModelVersion], enqueue: bool = True
) -> list[Evaluation]:
    """(Re)queue one evaluation per version of the export's test split and enqueue one job after commit."""
    evaluations = evaluations_queue(export=export, model_versions=model_versions)
    ids = [e.pk for e in evaluations]
    if enqueue:
        enqueue_on_commit(evaluate_models_task, ids)
    return evaluations


@transaction.atomic
def search_request(
    *,
    export: DatasetExport,
    settings_count: int = 8,
    keep: int = 4,
    user: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> ParameterSearch:
    """Queue a parameter search on an export (train split for the search, test split for the candidates)."""
    if export.status != JobStatus.DONE:
        raise TrainingError(f"export #{export.pk} is not finished")
    if export.attribute not in SEARCH_SPACE:
        raise TrainingError(f"the builtin classifier does not produce {export.attribute}")
    if settings_count < 4:
        raise TrainingError("try at least 4 parameter settings")
    if not 1 <= keep <= settings_count:
        raise TrainingError("keep between 1 and the number of settings tried")
    search = ParameterSearch.objects.create(
        export=export,
        settings_count=settings_count,
        keep=keep,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    if enqueue:
        enqueue_on_commit(parameter_search_task, search.pk)
    return search


@transaction.atomic
def training_request(
    *,
    attribute: str | None = None,
    export: DatasetExport | None = None,
    candidates: int = 6,
    promote_if_better: bool = False,
    user: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> TrainingRun:
    """Queue the training of learned-head candidates: on ``export``, or on a fresh manifest-only export of
    the attribute's ground truth (built by the same job, first)."""
    if not MIN_CANDIDATES <= candidates <= MAX_CANDIDATES:
        raise LearningError(f"train between {MIN_CANDIDATES} and {MAX_CANDIDATES} candidates, not {candidates}")
    if export is None:
        if attribute is None:
            raise LearningError("name an attribute or an export to train on")
        export = export_request(params=ExportParams(attribute=attribute), manifest_only=True, user=user, enqueue=False)
    elif export.status == JobStatus.FAILED:
        raise LearningError(f"export #{export.pk} failed: {export.error}")
    run = TrainingRun.objects.create(
        export=export,
        candidates=candidates,
        promote_if_better=promote_if_better,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    if enqueue:
        enqueue_on_commit(train_model_task, run.pk)
    return run


@transaction.atomic
def import_request(
    *, attribute: str, upload: File, user: AbstractBaseUser | None = None, enqueue: bool = True
) -> DatasetImport:
    """Keep an uploaded folder-per-class zip in the default storage and queue its import."""
    job = DatasetImport(
        attribute=attribute,
        name=(upload.name or "dataset.zip")[:200],
        created_by=user if user is not None and user.is_authenticated else None,
    )
    job.file.save(f"imports/{uuid.uuid4().hex}.zip", upload, save=False)
    job.save()
    if enqueue:
        enqueue_on_commit(import_dataset_task, job.pk)
    return job
