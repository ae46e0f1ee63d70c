"""Embedded defaults, the production configuration, and the role groups."""

import io
import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import Group

from core.roles import Role, has_role, is_staff_reviewer
from tests.support import LEAKY, ROOT


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in LEAKY}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DEBUG": "0",
            "SECRET_KEY": "x" * 64 + "production-like-secret-0123456789",
            "ALLOWED_HOSTS": "spotcheck.example.com",
            "DATABASE_URL": "postgres://spot:pw@db.internal:5432/spotcheck",
            "REDIS_URL": "redis://cache.internal:6379/0",
            "AWS_STORAGE_BUCKET_NAME": "spotcheck-media",
            "SPOTCHECK_VAR_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = _manage("check", env={"DEBUG": "0", "SPOTCHECK_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_loopback_fetching(tmp_path):
    result = _manage(
        "check",
        env={
            "DEBUG": "0",
            "SECRET_KEY": "y" * 80,
            "SPOTCHECK_FETCH_ALLOW": "10.0.0.0/8,127.0.0.1:8000",
            "SPOTCHECK_VAR_DIR": str(tmp_path),
        },
    )
    assert result.returncode != 0
    assert "core.E001" in result.stderr


def test_a_malformed_fetch_allow_entry_is_refused_at_startup(tmp_path):
    result = _manage("check", env={"SPOTCHECK_FETCH_ALLOW": "cdn.internal:443", "SPOTCHECK_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "core.E002" in result.stderr


def test_embedded_defaults_use_sqlite_in_wal_mode_with_a_busy_timeout(tmp_path):
    code = (
        "import django; django.setup();"
        "from django.conf import settings as s; from django.db import connection as c;"
        "c.cursor().execute('select 1');"
        "print(s.DATABASES['default']['ENGINE'], c.cursor().execute('PRAGMA journal_mode').fetchone()[0],"
        " s.DATABASES['default']['OPTIONS']['timeout'], s.CELERY_BROKER_URL, s.CACHES['default']['BACKEND'])"
    )
    clean = {k: v for k, v in os.environ.items() if k not in LEAKY}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "SPOTCHECK_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    engine, journal, timeout, broker, cache_backend = result.stdout.split()
    assert engine.endswith("sqlite3")
    assert journal == "wal"
    assert float(timeout) >= 5
    assert broker == "filesystem://"
    assert cache_backend.endswith("FileBasedCache")


@pytest.mark.django_db
def test_role_groups_exist_after_migrating():
    assert set(Group.objects.values_list("name", flat=True)) >= set(Role.values)


@pytest.mark.django_db
def test_roles_answer_for_groups_and_superusers(make_user):
    reviewer = make_user("r1", Role.REVIEWER)
    labeler = make_user("l1", Role.LABELER)
    root = make_user("root", is_superuser=True)
    assert is_staff_reviewer(reviewer) and not is_staff_reviewer(labeler)
    assert has_role(root, Role.ADVERTISER, Role.LABELER)
    assert not has_role(labeler, Role.ADMIN)


@pytest.mark.django_db
def test_demo_seed_creates_one_user_per_role_and_is_idempotent(django_user_model):
    from django.core.management import call_command

    out = io.StringIO()
    call_command("demo_seed", force=True, stdout=out)
    call_command("demo_seed", force=True, stdout=out)
    for role in Role.values:
        assert django_user_model.objects.filter(groups__name=role).count() == 1
    assert django_user_model.objects.get(username="labeler").check_password("spotcheck-demo")
