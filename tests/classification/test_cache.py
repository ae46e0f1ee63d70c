"""The classification cache: read-through in front of the database, versioned fix pushes that never let an
older fix win, atomic under concurrency (Redis WATCH/MULTI, a lock elsewhere), and cache_rebuild."""

import random
import threading
from datetime import timedelta

import pytest
from django.core.cache import cache as django_cache
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from classification import cache
from classification.models import GroundTruth
from classification.services import fix_record, ground_truth_record, image_from_bytes
from tests.support import needs_redis


@pytest.fixture
def image(db, stock_red_jpeg):
    return image_from_bytes(data=stock_red_jpeg)


def _fix(image, value, *, minutes_ago, advertiser="", staff=True, attribute="color"):
    return fix_record(
        image=image,
        attribute=attribute,
        value=value,
        user=None,
        advertiser=advertiser,
        staff=staff,
        at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def _color(image_id, advertiser=None):
    entry = cache.entries_get(image_ids=[image_id])[image_id]
    return cache.entry_values(entry, advertiser=advertiser)["color"]


def test_entries_are_read_through_once(image, django_assert_num_queries):
    django_cache.delete(cache.key(image.pk))
    with django_assert_num_queries(2):
        first = cache.entries_get(image_ids=[image.pk])
    with django_assert_num_queries(0):
        second = cache.entries_get(image_ids=[image.pk])
    assert first == second
    assert cache.entry_values(second[image.pk], advertiser=None)["image_type"].value == "Stock"


def test_a_cache_outage_falls_back_to_the_database_without_waiting_per_picture(image, dealer_blue_jpeg, monkeypatch):
    other = image_from_bytes(data=dealer_blue_jpeg)
    calls = []

    def down(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache._cache, "get_many", down)
    monkeypatch.setattr(cache._cache, "add", down)
    entries = cache.entries_get(image_ids=[image.pk, other.pk])
    assert cache.entry_values(entries[image.pk], advertiser=None)["color"].value == "Red"
    assert cache.entry_values(entries[other.pk], advertiser=None)["color"].value == "Blue"
    assert len(calls) == 1  # one failed round trip, not one per picture


def test_an_older_fix_pushed_after_a_newer_one_changes_nothing(image):
    newer = _fix(image, "Blue", minutes_ago=1)
    older = _fix(image, "Green", minutes_ago=10)
    cache.fix_push(ground_truth_id=newer.pk)
    cache.fix_push(ground_truth_id=older.pk)
    assert _color(image.pk).value == "Blue"
    cache.fix_push(ground_truth_id=newer.pk)  # a redelivery is harmless
    assert _color(image.pk).value == "Blue"


def test_advertiser_fixes_stay_with_their_advertiser(image):
    for gt in (_fix(image, "Green", minutes_ago=2, advertiser="acme", staff=False), _fix(image, "Blue", minutes_ago=1)):
        cache.fix_push(ground_truth_id=gt.pk)
    assert _color(image.pk, "acme").value == "Green"  # the advertiser's own word is final for them
    assert _color(image.pk, "zenith").value == "Blue"
    assert _color(image.pk).value == "Blue"


def test_push_to_an_uncached_picture_starts_from_the_database(image):
    django_cache.delete(cache.key(image.pk))
    gt = _fix(image, "Yellow", minutes_ago=0)
    cache.fix_push(ground_truth_id=gt.pk)
    entry = django_cache.get(cache.key(image.pk))
    assert entry["ml"]["image_type"]["value"] == "Stock"
    assert entry["staff"]["color"]["value"] == "Yellow"


def test_only_fixes_are_pushed(image):
    consensus = ground_truth_record(image=image, attribute="color", value="Red", source=GroundTruth.Source.CONSENSUS)
    with pytest.raises(ValueError, match="not a fix"):
        cache.fix_push(ground_truth_id=consensus.pk)


def _push_concurrently(fixes):
    order = fixes[:]
    random.Random(3).shuffle(order)
    barrier = threading.Barrier(len(order))
    errors = []

    def push(gt_id):
        from django.db import connection

        try:
            barrier.wait()
            cache.fix_push(ground_truth_id=gt_id)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=push, args=(gt.pk,)) for gt in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_pushes_in_any_order_leave_the_newest_fix(stock_red_jpeg):
    image = image_from_bytes(data=stock_red_jpeg)
    colours = ["Blue", "Green", "Yellow", "Pink", "Purple", "Orange", "Brown", "Grey"]
    fixes = [_fix(image, c, minutes_ago=len(colours) - i) for i, c in enumerate(colours)]  # Grey is newest
    fixes += [_fix(image, "White", minutes_ago=i + 1, advertiser="acme", staff=False) for i in range(3)]
    newest_acme = _fix(image, "Black", minutes_ago=0, advertiser="acme", staff=False)
    fixes.append(newest_acme)
    _push_concurrently(fixes)
    assert _color(image.pk).value == "Grey"
    assert _color(image.pk, "acme").value == "Black"


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_redis_backend_merges_atomically_with_watch(stock_red_jpeg, monkeypatch):
    assert cache._is_redis()
    image = image_from_bytes(data=stock_red_jpeg)
    fixes = [_fix(image, c, minutes_ago=10 - i) for i, c in enumerate(["Blue", "Green", "Yellow", "Pink", "Brown"])]
    updates = []
    original = cache._update_redis

    def counting(name, mutate):
        updates.append(name)
        return original(name, mutate)

    monkeypatch.setattr(cache, "_update_redis", counting)
    _push_concurrently(fixes)
    assert len(updates) == len(fixes)
    assert _color(image.pk).value == "Brown"


@pytest.mark.django_db
def test_an_unreachable_redis_raises_cache_unavailable_so_the_outbox_retries(image):
    gt = _fix(image, "Blue", minutes_ago=0)
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    with override_settings(CACHES=unreachable), pytest.raises(cache.CacheUnavailable):
        cache.fix_push(ground_truth_id=gt.pk)


@pytest.mark.django_db
def test_cache_rebuild_rewrites_entries_from_the_database(image, dealer_blue_jpeg, capsys):
    other = image_from_bytes(data=dealer_blue_jpeg)
    gt = _fix(image, "Blue", minutes_ago=5)
    stale = cache.entries_build([image.pk])[image.pk]
    stale["ml"]["color"]["value"] = "Pink"  # garbage in the cache, older than the rebuild
    stale["staff"] = {}
    django_cache.set(cache.key(image.pk), stale)
    django_cache.delete(cache.key(other.pk))
    call_command("cache_rebuild")
    assert "2 cache entries rebuilt" in capsys.readouterr().out
    assert django_cache.get(cache.key(image.pk))["staff"]["color"]["id"] == gt.pk
    assert django_cache.get(cache.key(image.pk))["ml"]["color"]["value"] == "Red"
    assert django_cache.get(cache.key(other.pk))["ml"]["image_type"]["value"] == "Dealer"
