"""Re-classification after a promotion: which pictures an older version of the backend classified, and
re-running the active version on them chunk by chunk. Computation only: the tasks enqueue it."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from classification.classifiers import ClassifierError
from classification.imaging import ImageRejected
from classification.models import ModelVersion, Prediction
from classification.services import image_reclassify

RECLASSIFY_CHUNK = 200
logger = logging.getLogger(__name__)


def outdated_image_ids(*, model_version: ModelVersion, after: int = 0, limit: int = RECLASSIFY_CHUNK) -> list[int]:
    """Up to ``limit`` ids (above ``after``, ascending) of pictures with a prediction from another version of
    the same backend. Keyset pagination: no cursor stays open while the pictures are being rewritten."""
    return list(
        Prediction.objects.filter(model_version__backend=model_version.backend, image_id__gt=after)
        .exclude(model_version=model_version)
        .order_by("image_id")
        .values_list("image_id", flat=True)
        .distinct()[:limit]
    )


def outdated_chunks(*, model_version_id: int, chunk_size: int = RECLASSIFY_CHUNK) -> Iterator[list[int]]:
    """Successive chunks of outdated pictures while the version is (still) active; none once a newer
    promotion took over (it plans its own)."""
    version = ModelVersion.objects.get(pk=model_version_id)
    if version.status != ModelVersion.Status.ACTIVE:
        return
    last = 0
    while chunk := outdated_image_ids(model_version=version, after=last, limit=chunk_size):
        yield chunk
        last = chunk[-1]


def reclassify_chunk(*, model_version_id: int, image_ids: Sequence[int]) -> int:
    """Re-classify pictures with the active version; stops if it is no longer active. Returns how many changed.

    A picture whose stored bytes the backend refuses for good is logged and skipped; a transient backend
    error propagates so the task retries the chunk (pictures already done are then skipped)."""
    version = ModelVersion.objects.get(pk=model_version_id)
    if version.status != ModelVersion.Status.ACTIVE:
        return 0
    changed = 0
    for image_id in image_ids:
        try:
            changed += bool(image_reclassify(image_id=image_id, model_version_id=version.pk))
        except ClassifierError as exc:
            if exc.transient:
                raise
            logger.warning("reclassify: %s refused picture %s: %s", version.name, image_id, exc)
        except ImageRejected as exc:
            logger.warning("reclassify: picture %s cannot be decoded: %s", image_id, exc)
    return changed
