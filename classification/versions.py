"""Model versions: the active one of a backend, created with the backend's default params when there is none.

Apart from the services so that a classifier that builds others (the cascade) can ask for their versions
without importing the services, which build on the classifiers."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from classification.models import Backend, ModelVersion
from classification.selectors import model_version_active
from classification.vocabulary import Attribute


def _default_params(backend: str) -> dict:
    if backend == Backend.BUILTIN:
        from classification.classifiers.builtin import BuiltinClassifier

        return dict(BuiltinClassifier.DEFAULT_PARAMS)
    if backend == Backend.HTTP:
        return {
            "url": settings.SPOTCHECK_HTTP_CLASSIFIER_URL,
            "model": settings.SPOTCHECK_HTTP_CLASSIFIER_MODEL,
            "timeout": settings.SPOTCHECK_HTTP_CLASSIFIER_TIMEOUT,
        }
    if backend == Backend.REKOGNITION:
        return {"region": settings.SPOTCHECK_REKOGNITION_REGION}
    if backend == Backend.LEARNED:
        from classification.classifiers.learned import default_params

        return default_params()
    if backend == Backend.AZURE:
        return {"endpoint": settings.SPOTCHECK_AZURE_VISION_ENDPOINT}
    if backend == Backend.CASCADE:
        return {
            "local": settings.SPOTCHECK_CASCADE_LOCAL,
            "paid": settings.SPOTCHECK_CASCADE_PAID,
            "thresholds": {Attribute.IMAGE_TYPE: settings.SPOTCHECK_CASCADE_THRESHOLD},
        }
    return {}


def model_version_ensure_active(*, backend: str | None = None) -> ModelVersion:
    """The active version of the configured backend, created with default params when there is none
    (a fresh database has the builtin one from migration 0003; tests that flush tables do not)."""
    backend = backend or settings.SPOTCHECK_CLASSIFIER_BACKEND
    version = model_version_active(backend=backend)
    if version is not None:
        return version
    try:
        with transaction.atomic():
            now = timezone.now()
            return ModelVersion.objects.create(
                name=f"{backend}-default-{now:%Y%m%d%H%M%S%f}",
                backend=backend,
                params=_default_params(backend),
                status=ModelVersion.Status.ACTIVE,
                notes="Created with default params because no version of this backend was active.",
                promoted_at=now,
            )
    except IntegrityError:  # another process activated one first
        return model_version_active(backend=backend)
