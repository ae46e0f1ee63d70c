"""Load the demo: one user per role, then each app's demo data. Idempotent; refused when DEBUG=0."""

import importlib

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import module_has_submodule

from core.demo import DEMO_PASSWORD, DEMO_USERS

# Each app may provide demo.seed(users=..., stdout=...); they run in dependency order.
APP_ORDER = ("classification", "advertiser_sitemaps", "labeling")


class Command(BaseCommand):
    help = "Create the demo users and demo data (idempotent). Refused when DEBUG=0 unless --force."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="seed even with DEBUG=0")

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError("demo_seed creates users with a known password; refusing with DEBUG=0")
        users = {role: self._user(role, fields) for role, fields in DEMO_USERS.items()}
        for label in APP_ORDER:
            app = apps.get_app_config(label)
            if module_has_submodule(app.module, "demo"):
                importlib.import_module(f"{app.name}.demo").seed(users=users, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS(f"Demo logins (password for all: {DEMO_PASSWORD}):"))
        for role, user in users.items():
            self.stdout.write(f"  {role:<11} {user.username}")

    def _user(self, role: str, fields: dict):
        fields = dict(fields)
        username = fields.pop("username")
        user, created = get_user_model().objects.get_or_create(username=username, defaults=fields)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        user.groups.add(Group.objects.get(name=role))
        return user
