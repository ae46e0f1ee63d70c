"""While the database or the cache is unreachable, requests answer 503 with Retry-After in the error shape."""

import sqlite3
from contextlib import contextmanager

import pytest
from django.core.cache import cache
from django.db import OperationalError, connection
from django.test import Client, override_settings
from django.urls import path
from rest_framework.authtoken.models import Token
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from core.outage import is_outage

UNREACHABLE_REDIS = "redis://127.0.0.1:8499/5"  # inside this suite's port range; nothing listens there


@contextmanager
def database_unreachable():
    """Every statement fails the way a restarting server makes it fail (PostgreSQL: "the connection was
    closed"; SQLite: "database is locked")."""

    def refuse(execute, sql, params, many, context):
        if connection.vendor == "sqlite":
            raise OperationalError("database is locked") from sqlite3.OperationalError("database is locked")
        raise OperationalError("server closed the connection unexpectedly")

    with connection.execute_wrapper(refuse):
        yield


def _assert_503(response):
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = response.json()
    assert body["error"]["code"] == "service_unavailable"
    assert "retry" in body["error"]["message"]


@pytest.mark.django_db
def test_api_call_answers_503_with_retry_after_while_the_database_is_unreachable(reviewer):
    token = Token.objects.create(user=reviewer)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    with database_unreachable():
        response = client.post("/api/v1/fixes/", {"fixes": []}, format="json")
    _assert_503(response)


@pytest.mark.django_db
def test_page_answers_503_while_the_database_is_unreachable_when_the_session_is_read(reviewer):
    client = Client()
    client.force_login(reviewer)
    with database_unreachable():
        response = client.get("/sitemaps/")
    _assert_503(response)


@pytest.mark.django_db
def test_health_still_answers_its_own_503_naming_the_database(reviewer):
    with database_unreachable():
        response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False


class _CacheReadingView(APIView):
    """Any view that reads the cache without a fallback of its own."""

    def get(self, request):
        return Response({"value": cache.get("some-key")})


urlpatterns = [path("cached/", _CacheReadingView.as_view())]


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_api_call_answers_503_while_the_cache_server_is_unreachable(api_as, reviewer):
    cache_setting = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    with override_settings(CACHES=cache_setting):
        response = api_as(reviewer).get("/cached/")
    _assert_503(response)


def test_a_bug_is_not_mistaken_for_an_outage():
    missing_table = OperationalError("no such table: x")
    missing_table.__cause__ = sqlite3.OperationalError("no such table: x")
    assert not is_outage(missing_table)
    assert not is_outage(ValueError("bad input"))
