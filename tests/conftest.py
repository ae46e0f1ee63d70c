"""Shared fixtures: users for each role, API clients, a clean cache per test."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from core.roles import Role


def pytest_report_header(config):
    db = settings.DATABASES["default"]
    return [
        f"spotcheck database: {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or db['NAME']}",
        f"spotcheck broker: {settings.CELERY_BROKER_URL.split('@')[-1]}",
        f"spotcheck cache: {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}",
    ]


@pytest.fixture(autouse=True)
def _builtin_classifier(settings):
    """The suite's expectations about classifier answers (values, scores, model names, call counts) are
    written against the builtin backend: exact and a few milliseconds a picture. Tests of the learned
    backend (the default outside tests) set SPOTCHECK_CLASSIFIER_BACKEND themselves."""
    settings.SPOTCHECK_CLASSIFIER_BACKEND = "builtin"


@pytest.fixture(autouse=True)
def _clean_cache():
    from django.core.cache import cache

    from core.authentication import tokens
    from core.roles import remembered

    cache.clear()
    tokens.clear()
    remembered.clear()
    yield


@pytest.fixture
def make_user(db, django_user_model):
    def make(username: str, *roles: str, **fields):
        user = django_user_model.objects.create_user(username=username, password="pw-" + username, **fields)
        for role in roles:
            # get_or_create: transactional tests flush the groups the data migration made.
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user

    return make


@pytest.fixture
def labeler(make_user):
    return make_user("lab", Role.LABELER)


@pytest.fixture
def reviewer(make_user):
    return make_user("rev", Role.REVIEWER)


@pytest.fixture
def advertiser_user(make_user):
    return make_user("adv", Role.ADVERTISER)


@pytest.fixture
def admin_user(make_user):
    return make_user("boss", Role.ADMIN, is_staff=True, is_superuser=True)


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def api_as(api_client):
    def login(user):
        api_client.force_authenticate(user)
        return api_client

    return login


@pytest.fixture
def broker_unreachable():
    """Tasks are sent for real (not eager) to a Redis broker where nothing listens, as when Redis is down;
    ``broker_unreachable.restore()`` brings back the test configuration (eager tasks) before the test ends."""
    from config.celery import app

    names = ("broker_url", "broker_transport", "broker_transport_options", "task_always_eager")
    saved = {name: app.conf[name] for name in names}

    def reset_pools():
        app._pool = None
        app.__dict__.get("amqp") and setattr(app.amqp, "_producer_pool", None)

    class Switch:
        @staticmethod
        def restore():
            app.conf.update(saved)
            reset_pools()

    app.conf.update(
        broker_url="redis://127.0.0.1:8499/5",  # this suite's port range: nothing listens there
        broker_transport=None,
        broker_transport_options={"socket_connect_timeout": 0.5},
        task_always_eager=False,
    )
    reset_pools()
    yield Switch
    Switch.restore()


@pytest.fixture
def retry_waits(monkeypatch):
    """Every wait the one retry policy computed in the test, as ``(retry_after asked for, seconds waited)``
    (eager tasks run their retries at once; this is what a worker would have waited)."""
    from core.retry import RetryPolicy

    waits: list[tuple[float | None, float]] = []
    original = RetryPolicy.countdown

    def recording(self, retries, *, retry_after=None):
        seconds = original(self, retries, retry_after=retry_after)
        waits.append((retry_after, seconds))
        return seconds

    monkeypatch.setattr(RetryPolicy, "countdown", recording)
    return waits
