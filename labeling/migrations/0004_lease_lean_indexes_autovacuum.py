"""The lease table loses its two single-column foreign-key indexes (the composite ones lead with the same
columns) and, on PostgreSQL, is vacuumed after every 1,000 dead rows rather than after a fifth of the table:
each answer inserts and deletes one lease, so the small table would otherwise carry thousands of dead rows
that every "next" reads past. Nothing but the indexes on SQLite."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

_AUTOVACUUM = ("autovacuum_vacuum_scale_factor", "autovacuum_vacuum_threshold")


def _vacuum_often(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE labeling_lease SET ({_AUTOVACUUM[0]} = 0, {_AUTOVACUUM[1]} = 1000)")


def _vacuum_by_default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE labeling_lease RESET ({', '.join(_AUTOVACUUM)})")


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0003_lease_unlogged"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="lease",
            name="item",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="leases",
                to="labeling.item",
            ),
        ),
        migrations.AlterField(
            model_name="lease",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="labeling_leases",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(_vacuum_often, _vacuum_by_default, elidable=False),
    ]
