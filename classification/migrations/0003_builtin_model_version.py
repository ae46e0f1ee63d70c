"""The first active builtin model version, with the classifier's default thresholds as its params."""

from django.db import migrations
from django.utils import timezone

NAME = "builtin-1"


def create(apps, schema_editor):
    from classification.classifiers.builtin import BuiltinClassifier

    ModelVersion = apps.get_model("classification", "ModelVersion")
    if ModelVersion.objects.filter(backend="builtin", status="active").exists():
        return
    now = timezone.now()
    ModelVersion.objects.update_or_create(
        name=NAME,
        defaults={
            "backend": "builtin",
            "status": "active",
            "params": dict(BuiltinClassifier.DEFAULT_PARAMS),
            "notes": "Hand-set thresholds, checked on the generated Stock/Dealer/Placeholder set.",
            "created_at": now,
            "promoted_at": now,
        },
    )


def remove(apps, schema_editor):
    ModelVersion = apps.get_model("classification", "ModelVersion")
    ModelVersion.objects.filter(name=NAME, predictions__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("classification", "0002_prediction_reason")]

    operations = [migrations.RunPython(create, remove)]
