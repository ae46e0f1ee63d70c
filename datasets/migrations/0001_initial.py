"""The dataset models, moved here from classification: state only, since their tables keep their names
(classification.0051 drops them from classification's state). Their content types (and so permissions and
admin history) are renamed to this app where they exist."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = ("datasetexport", "evaluation", "parametersearch")


def content_types_move(apps, schema_editor, *, old="classification", new="datasets"):
    """Rename the moved models' content types, unless the new ones exist already (then they are kept)."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MOVED:
        if not ContentType.objects.using(db).filter(app_label=new, model=model).exists():
            ContentType.objects.using(db).filter(app_label=old, model=model).update(app_label=new)


def content_types_back(apps, schema_editor):
    content_types_move(apps, schema_editor, old="datasets", new="classification")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("classification", "0051_move_dataset_models_to_datasets"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="DatasetExport",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "attribute",
                            models.CharField(
                                choices=[
                                    ("image_type", "Image type"),
                                    ("color", "Colour"),
                                    ("banner", "Banner"),
                                    ("position", "Position"),
                                ],
                                max_length=20,
                            ),
                        ),
                        ("params", models.JSONField(default=dict)),
                        ("manifest_only", models.BooleanField(default=False)),
                        ("snapshot_at", models.DateTimeField(default=django.utils.timezone.now)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("done", "Done"),
                                    ("failed", "Failed"),
                                ],
                                default="queued",
                                max_length=10,
                            ),
                        ),
                        ("progress", models.PositiveSmallIntegerField(default=0, help_text="percent")),
                        ("counts", models.JSONField(blank=True, default=dict)),
                        ("summary", models.JSONField(blank=True, default=dict)),
                        ("diff", models.JSONField(blank=True, default=dict)),
                        ("rows", models.PositiveIntegerField(default=0)),
                        ("file", models.FileField(blank=True, max_length=300, upload_to="")),
                        ("manifest", models.FileField(blank=True, max_length=300, upload_to="")),
                        ("error", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "classification_datasetexport",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
                migrations.CreateModel(
                    name="Evaluation",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("done", "Done"),
                                    ("failed", "Failed"),
                                ],
                                default="queued",
                                max_length=10,
                            ),
                        ),
                        ("progress", models.PositiveSmallIntegerField(default=0, help_text="percent")),
                        ("metrics", models.JSONField(blank=True, default=dict)),
                        ("error", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "export",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="evaluations",
                                to="datasets.datasetexport",
                            ),
                        ),
                        (
                            "model_version",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="evaluations",
                                to="classification.modelversion",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "classification_evaluation",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
                migrations.CreateModel(
                    name="ParameterSearch",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("settings_count", models.PositiveSmallIntegerField(default=8)),
                        ("keep", models.PositiveSmallIntegerField(default=4)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("done", "Done"),
                                    ("failed", "Failed"),
                                ],
                                default="queued",
                                max_length=10,
                            ),
                        ),
                        ("progress", models.PositiveSmallIntegerField(default=0, help_text="percent")),
                        ("results", models.JSONField(blank=True, default=list)),
                        ("error", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "export",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="searches",
                                to="datasets.datasetexport",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "classification_parametersearch",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
                migrations.AddIndex(
                    model_name="datasetexport",
                    index=models.Index(fields=["attribute", "status", "-snapshot_at"], name="export_latest_done"),
                ),
                migrations.AddConstraint(
                    model_name="datasetexport",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("progress__lte", 100)), name="export_progress_is_a_percent"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="evaluation",
                    constraint=models.UniqueConstraint(
                        fields=("export", "model_version"), name="one_evaluation_per_export_and_version"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="parametersearch",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("keep__gte", 1), ("keep__lte", models.F("settings_count"))),
                        name="keep_le_tried",
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_move, content_types_back),
    ]
