"""DatasetExport, Evaluation and ParameterSearch moved to the datasets app: state only, the tables stay
(datasets.0001_initial takes them over under the same names)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("classification", "0050_dataset_export")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Evaluation"),
                migrations.DeleteModel(name="ParameterSearch"),
                migrations.DeleteModel(name="DatasetExport"),
            ],
            database_operations=[],
        )
    ]
