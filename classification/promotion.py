"""Promotion of a model version: it becomes the active one of its backend with no downtime, and the
predictions older versions made are refreshed in the background (classification.reclassify)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from classification.models import ModelVersion
from classification.tasks.promotion import reclassify_plan_task
from core.outbox import enqueue_on_commit


def model_promote(*, model_version_id: int, enqueue: bool = True) -> ModelVersion:
    """Make a version the active one of its backend in one transaction, then refresh older predictions in
    the background. Fixes and ground truth are never touched: only predictions are re-computed."""
    backend = ModelVersion.objects.values_list("backend", flat=True).get(pk=model_version_id)
    with transaction.atomic():
        # Lock every version of the backend, in id order: concurrent promotions queue up here, and each then
        # reads the active version as the previous one left it (locking only the active row would let a
        # waiting promotion miss the version activated meanwhile and trip the one-active constraint).
        list(ModelVersion.objects.select_for_update().filter(backend=backend).order_by("pk").values_list("pk"))
        version = ModelVersion.objects.get(pk=model_version_id)
        if version.status == ModelVersion.Status.ACTIVE:
            return version
        ModelVersion.objects.filter(backend=backend, status=ModelVersion.Status.ACTIVE).update(
            status=ModelVersion.Status.RETIRED
        )
        version.status = ModelVersion.Status.ACTIVE
        version.promoted_at = timezone.now()
        version.save(update_fields=["status", "promoted_at"])
        if enqueue:
            enqueue_on_commit(reclassify_plan_task, version.pk)
    return version
