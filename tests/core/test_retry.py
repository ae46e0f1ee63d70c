"""The one retry policy: transient errors named, capped exponential backoff with jitter, Retry-After honoured
(seconds or HTTP date, capped), other 4xx never retried; every task uses it."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from django.db import OperationalError

from config.celery import app
from core.retry import RETRY, PolicyTask


@pytest.mark.parametrize(("status", "transient"), [(429, True), (500, True), (503, True), (599, True),
                                                   (400, False), (403, False), (404, False), (410, False)])  # fmt: skip
def test_429_and_5xx_are_transient_other_statuses_are_not(status, transient):
    assert RETRY.status_transient(status) is transient
    assert RETRY.reason_transient(f"http_{status}") is transient


def test_network_reasons_are_transient_and_content_reasons_are_not():
    assert all(RETRY.reason_transient(r) for r in ("timeout", "connection", "dns"))
    assert not any(RETRY.reason_transient(r) for r in ("not_an_image", "too_large", "blocked_address", "http_x"))


def test_retry_after_in_seconds_and_as_an_http_date_capped():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert RETRY.retry_after_seconds("120", now=now) == 120
    assert RETRY.retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90
    assert RETRY.retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0
    assert RETRY.retry_after_seconds("86400", now=now) == RETRY.retry_after_cap
    assert RETRY.retry_after_seconds("soon", now=now) is None
    assert RETRY.retry_after_seconds(None) is None


def test_backoff_grows_is_capped_and_jittered_and_never_comes_before_retry_after():
    waits = [RETRY.countdown(0) for _ in range(200)]
    assert min(waits) >= 0 and max(waits) <= RETRY.backoff_base and len(set(waits)) > 100
    assert max(RETRY.countdown(30) for _ in range(200)) <= RETRY.backoff_cap
    assert max(RETRY.countdown(6) for _ in range(200)) > RETRY.backoff_base * 2
    assert all(RETRY.countdown(0, retry_after=120) >= 120 for _ in range(50))


def test_every_task_retries_by_the_one_policy():
    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert {"sitemaps.tasks.fix_deliver", "classification.export_dataset", "core.tasks.outbox_deliver"} <= set(ours)
    for name, task in ours.items():
        assert isinstance(task, PolicyTask), name
        assert OperationalError in task.autoretry_for, name
        assert task.max_retries == RETRY.max_retries, name


@pytest.mark.django_db
def test_a_task_hitting_a_database_outage_is_retried_then_succeeds(monkeypatch):
    from celery import shared_task
    from celery.exceptions import Retry

    calls = []

    @shared_task(name="tests.flaky_database", bind=True)
    def flaky(self):
        calls.append(self.request.retries)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return "done"

    signature = flaky.signature(())
    while True:  # a worker runs the retry signature again; do the same
        try:
            result = signature.apply(throw=True).get()
            break
        except Retry as retry:
            assert 0 <= retry.when <= RETRY.backoff_cap if isinstance(retry.when, int | float) else True
            signature = retry.sig
    assert result == "done" and calls == [0, 1, 2]
