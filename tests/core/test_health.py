"""/healthz reports database, cache and broker reachability as JSON, 200 when all answer, else 503."""

import pytest
from django.core.cache import cache

from core import health


@pytest.mark.django_db
def test_healthz_is_public_and_reports_every_service(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert set(body["checks"]) == {"database", "cache", "broker"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
def test_healthz_answers_503_naming_the_unreachable_service(client, monkeypatch):
    def broken_set(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "set", broken_set)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["cache"] == {"ok": False, "error": "ConnectionError: cache down"}
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_worker_check_passes_when_a_worker_answers_the_ping(settings):
    # Eager mode stands in for a worker here; the real round trip is in test_celery_round_trip.
    report = health.health_report(include_worker=True)
    assert report["checks"]["worker"]["ok"] is True


@pytest.mark.django_db
def test_worker_check_reuses_a_recent_answer_so_public_callers_cannot_queue_a_ping_each(monkeypatch):
    sent = []
    monkeypatch.setattr(
        "core.tasks.ping.delay", lambda **kwargs: sent.append(kwargs) or cache.set(f"ping:{kwargs['token']}", "pong")
    )
    first = health.health_report(include_worker=True)
    second = health.health_report(include_worker=True)
    assert first["checks"]["worker"]["ok"] and second["checks"]["worker"] == first["checks"]["worker"]
    assert len(sent) == 1
