"""Create the "service" role group: machine tokens (scrapers, other systems) that may call POST /classify/."""

from django.db import migrations


def create_service_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name="service")


def remove_service_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="service").delete()


class Migration(migrations.Migration):
    dependencies = [("core", "0002_task_outbox")]
    operations = [migrations.RunPython(create_service_role, remove_service_role)]
