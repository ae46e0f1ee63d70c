"""What backends said beyond our attributes, and what they were paid for: the labels a backend returned
for a picture (searchable tags such as "beach", "text", "logo", with scores, per model version), and one
row per picture sent to a backend with its estimated cost (a classification run's report sums them)."""

from django.db import models
from django.utils import timezone

from classification.models import Image, ModelVersion

__all__ = ["BackendCall", "ImageLabel"]


class ImageLabel(models.Model):
    """One label a model version gave a picture (lower-cased, as the backend named it) and its score."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="labels")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="labels")
    name = models.CharField(max_length=100)
    score = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version", "name"], name="one_label_per_image_version")
        ]
        indexes = [models.Index(fields=["name", "score"], name="label_search")]

    def __str__(self) -> str:
        return f"{self.image_id}:{self.name}={self.score:.2f}"


class BackendCall(models.Model):
    """One picture sent to one backend (the version called), with what it is estimated to have cost."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="backend_calls")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="calls")
    backend = models.CharField(max_length=20)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["image", "created_at"], name="backend_call_lookup")]

    def __str__(self) -> str:
        return f"{self.image_id} → {self.backend} ({self.cost})"
