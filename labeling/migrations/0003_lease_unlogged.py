"""Leases in an UNLOGGED table on PostgreSQL: a lease is a 10-minute reservation, rebuilt by the next "next"
call, so it needs no write-ahead log. Each lease wrote WAL for its row and four indexes, and the "next"
transaction waited for that WAL to reach the disk at COMMIT; now "next" writes no WAL at all. After a crash of
PostgreSQL (not a clean restart) the table comes back empty: the items are simply leased again. Unlogged
tables are not copied to streaming replicas either, which is fine for the same reason. Nothing on SQLite."""

from django.db import migrations


def _set(logged: bool):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE labeling_lease SET {'LOGGED' if logged else 'UNLOGGED'}")

    return run


class Migration(migrations.Migration):
    dependencies = [("labeling", "0002_campaign_rule_and_labeler_flags")]

    operations = [migrations.RunPython(_set(logged=False), _set(logged=True), elidable=False)]
