"""Training datasets and model quality: exports of ground truth, evaluations of model versions on them,
and parameter searches that produce candidate versions of the builtin classifier.

The tables keep the names they had when these models lived in classification (moved state-only).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from classification.models import ModelVersion
from classification.vocabulary import Attribute
from core.jobs import JobStatus

__all__ = ["DatasetExport", "DatasetImport", "Evaluation", "JobStatus", "ParameterSearch", "TrainingRun"]


class DatasetExport(models.Model):
    """One export of an attribute's ground truth: its parameters, progress, result files and counts.

    ``snapshot_at`` is fixed when the export is requested: ground truth recorded later is never read, so
    running the same export twice gives the same manifest byte for byte.
    """

    attribute = models.CharField(max_length=20, choices=Attribute.choices)
    # Normalised parameters (sources, since, sizes, classes, split, grouping, cap): see datasets.export.
    params = models.JSONField(default=dict)
    manifest_only = models.BooleanField(default=False)
    snapshot_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent")
    # {"train": {class: n}, "test": {class: n}}
    counts = models.JSONField(default=dict, blank=True)
    # Why rows were left out, how many groups, … (also written to summary.json)
    summary = models.JSONField(default=dict, blank=True)
    # Against the previous done export of the attribute: {"previous_id", "added", "removed", "relabelled", …}
    diff = models.JSONField(default=dict, blank=True)
    rows = models.PositiveIntegerField(default=0)
    # The zip (or, manifest-only, the CSV) and the manifest on its own, both in the default storage.
    file = models.FileField(max_length=300, blank=True)
    manifest = models.FileField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "classification_datasetexport"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["attribute", "status", "-snapshot_at"], name="export_latest_done")]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="export_progress_is_a_percent"),
        ]

    def __str__(self) -> str:
        return f"export #{self.pk} {self.attribute} ({self.status})"


class Evaluation(models.Model):
    """How one model version did on one export's test split (accuracy, per class, per advertiser)."""

    export = models.ForeignKey(DatasetExport, on_delete=models.CASCADE, related_name="evaluations")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent")
    # {"n", "accuracy", "classes": {c: {"precision", "recall", "support"}}, "confusion": {"labels", "matrix"},
    #  "advertisers": {slug: {"n", "accuracy"}}}
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "classification_evaluation"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["export", "model_version"], name="one_evaluation_per_export_and_version"),
        ]

    def __str__(self) -> str:
        return f"evaluation of {self.model_version_id} on export {self.export_id} ({self.status})"


class ParameterSearch(models.Model):
    """A search over builtin-classifier parameters on an export's train split; its best settings become
    candidate model versions, evaluated on the test split."""

    export = models.ForeignKey(DatasetExport, on_delete=models.CASCADE, related_name="searches")
    settings_count = models.PositiveSmallIntegerField(default=8)
    keep = models.PositiveSmallIntegerField(default=4)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent")
    # [{"params", "train_accuracy", "model_version_id"|None}] best first
    results = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "classification_parametersearch"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(keep__gte=1) & Q(keep__lte=models.F("settings_count")), name="keep_le_tried"
            ),
        ]

    def __str__(self) -> str:
        return f"parameter search #{self.pk} on export {self.export_id} ({self.status})"


class DatasetImport(models.Model):
    """An upload of a labelled folder-per-class zip, imported as ground truth (source "import")."""

    attribute = models.CharField(max_length=20, choices=Attribute.choices)
    name = models.CharField(max_length=200, help_text="The uploaded file's name")
    file = models.FileField(max_length=300, blank=True, help_text="The zip, kept until the import is done")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent")
    # datasets.importing.ImportReport.as_json(): files, pictures, recorded, duplicates, rejected…
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="import_progress_is_a_percent"),
        ]

    def __str__(self) -> str:
        return f"import #{self.pk} {self.attribute} {self.name} ({self.status})"


class TrainingRun(models.Model):
    """Training of learned heads for one attribute on an export's grouped split: several candidates, each
    evaluated on the test split beside the active model, the best promoted when asked and better."""

    export = models.ForeignKey(DatasetExport, on_delete=models.CASCADE, related_name="training_runs")
    candidates = models.PositiveSmallIntegerField(default=6)
    promote_if_better = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent")
    # [{"name", "feature_set", "c", "test": {...}, "beats_active"}, …] best first, then {"active": …}
    results = models.JSONField(default=list, blank=True)
    promoted = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(candidates__gte=1) & Q(candidates__lte=12), name="training_candidates_1_to_12"
            ),
        ]

    def __str__(self) -> str:
        return f"training run #{self.pk} on export {self.export_id} ({self.status})"
