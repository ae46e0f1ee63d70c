"""The suite's own plumbing: the live server's request threads and the test thread write to one test database
with the normal locking, and no test leaves the connection outside autocommit for the tests after it (the
cause of two flaky tests: a shared-cache in-memory SQLite database answers "table is locked" at once instead
of waiting, which left the test thread's connection outside autocommit)."""

import json
import threading
import urllib.request

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from rest_framework.authtoken.models import Token

from core.roles import Role
from tests.labeling.conftest import CampaignFactory, ItemFactory


def test_the_test_database_is_not_a_shared_cache_in_memory_database(db):
    assert connection.vendor != "sqlite" or not connection.is_in_memory_db()


@pytest.mark.django_db(transaction=True)
def test_writes_in_live_server_threads_and_the_test_thread_all_succeed(live_server, make_user):
    campaign = CampaignFactory()
    for _ in range(20):
        ItemFactory(campaign=campaign)
    tokens = [Token.objects.create(user=make_user(f"l{i}", Role.LABELER)).key for i in range(4)]
    statuses: list[int] = []

    def lease(token: str) -> None:
        for _ in range(5):
            request = urllib.request.Request(
                f"{live_server.url}/api/v1/campaigns/{campaign.pk}/next/",
                data=json.dumps({"count": 1}).encode(),
                headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)

    threads = [threading.Thread(target=lease, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for i in range(100):
        with transaction.atomic():
            Group.objects.create(name=f"g{i}")
    for thread in threads:
        thread.join()
    assert statuses == [200] * 20
    assert connection.get_autocommit() and not connection.in_atomic_block
    transaction.on_commit(lambda: None)  # raises TransactionManagementError when left outside autocommit
