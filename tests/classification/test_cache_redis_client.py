"""The classification cache merges entries on Redis through a redis-py client of its own (Django's RedisCache
has no WATCH/MULTI and its client is private API): both must agree on keys, values and timeouts."""

import pytest
from django.core.cache import cache as django_cache

from classification import cache
from tests.support import needs_redis

pytestmark = needs_redis


@pytest.fixture
def fresh_key():
    name = "test:redis-client:entry"
    django_cache.delete(name)
    yield name
    django_cache.delete(name)


def test_an_entry_merged_through_our_client_reads_back_through_djangos_cache(fresh_key):
    cache._update_redis(fresh_key, lambda current: {"slots": {"color": ["Blue", 7]}, "was": current})
    assert django_cache.get(fresh_key) == {"slots": {"color": ["Blue", 7]}, "was": None}


def test_an_entry_written_by_djangos_cache_is_what_our_client_merges(fresh_key):
    django_cache.set(fresh_key, {"slots": {"image_type": ["Stock", 3]}})
    seen = []

    def mutate(current):
        seen.append(current)
        return {**current, "more": True}

    cache._update_redis(fresh_key, mutate)
    assert seen == [{"slots": {"image_type": ["Stock", 3]}}]
    assert django_cache.get(fresh_key) == {"slots": {"image_type": ["Stock", 3]}, "more": True}


def test_our_client_talks_to_the_server_and_database_django_writes_to(fresh_key):
    client, _ = cache._redis_connection()
    django_cache.set(fresh_key, {"n": 1})
    assert client.exists(django_cache.make_and_validate_key(fresh_key)) == 1
