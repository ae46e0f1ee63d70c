"""Requests for dataset work: each creates (or resets) its job rows and enqueues the task after commit.

The work itself is computed in datasets.export / evaluation / training, which the tasks import; promotion of
a model version is classification's (classification.promotion).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from classification.models import ModelVersion
from core.jobs import JobStatus
from datasets.evaluation import evaluations_queue
from datasets.export import ExportParams, last_done_export
from datasets.models import DatasetExport, Evaluation, ParameterSearch
from datasets.tasks import evaluate_models_task, export_dataset_task, parameter_search_task
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
        transaction.on_commit(lambda: export_dataset_task.delay(export.pk))
    return export


@transaction.atomic
def evaluation_request(
    *, export: DatasetExport, model_versions: Sequence[ModelVersion], enqueue: bool = True
) -> list[Evaluation]:
    """(Re)queue one evaluation per version of the export's test split and enqueue one job after commit."""
    evaluations = evaluations_queue(export=export, model_versions=model_versions)
    ids = [e.pk for e in evaluations]
    if enqueue:
        transaction.on_commit(lambda: evaluate_models_task.delay(ids))
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
        transaction.on_commit(lambda: parameter_search_task.delay(search.pk))
    return search
