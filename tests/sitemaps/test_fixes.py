"""Fix semantics: one history row, one outbox row and one cache update per change; a fix made while the cache
is unreachable is kept and delivered by the sweep; racing fixes leave the newer; staff fixes are global ground
truth, advertiser fixes scoped to their advertiser."""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from classification import cache as classification_cache
from classification.models import GroundTruth
from sitemaps.fix_write import fixes_undelivered_resend
from sitemaps.fixes import FixChange, fixes_apply
from sitemaps.models import FixOutbox, ManualFix
from tests.support import needs_postgres, needs_redis


def cached_value(image_id: int, attribute: str, advertiser: str | None = None):
    entry = classification_cache.entries_get(image_ids=[image_id])[image_id]
    return classification_cache.entry_values(entry, advertiser=advertiser)[attribute].value


@pytest.fixture
def pushes(monkeypatch):
    """Spy on classification.cache.fix_push (the real one still runs)."""
    calls = []
    real = classification_cache.fix_push

    def spy(*, ground_truth_id):
        calls.append(ground_truth_id)
        return real(ground_truth_id=ground_truth_id)

    monkeypatch.setattr(classification_cache, "fix_push", spy)
    return calls


@pytest.mark.django_db
def test_an_update_with_three_changes_gives_three_history_rows_and_three_cache_updates(
    reviewer, advertiser, make_picture, pushes, django_capture_on_commit_callbacks
):
    a, b = (make_picture(advertiser=advertiser, image_type="Dealer", color="Red") for _ in range(2))
    with django_capture_on_commit_callbacks(execute=True):
        made = fixes_apply(
            user=reviewer,
            advertiser=advertiser,
            changes=[
                FixChange(a.id, "image_type", "Stock"),
                FixChange(a.id, "color", "Blue"),
                FixChange(b.id, "color", "Red"),  # unchanged: nothing
                FixChange(b.id, "image_type", "Placeholder"),
            ],
        )
    assert len(made) == 3 and ManualFix.objects.count() == 3
    assert sorted(pushes) == sorted(f.ground_truth_id for f in made)
    assert FixOutbox.objects.filter(delivered_at__isnull=False).count() == 3
    assert cached_value(a.image_id, "image_type") == "Stock"
    assert cached_value(a.image_id, "color") == "Blue"
    assert cached_value(b.image_id, "image_type") == "Placeholder"


@pytest.mark.django_db
def test_staff_fixes_are_global_ground_truth_and_advertiser_fixes_are_scoped(
    reviewer, member, advertiser, make_picture, django_capture_on_commit_callbacks
):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    with django_capture_on_commit_callbacks(execute=True):
        fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(vi.id, "color", "Blue")])
        fixes_apply(user=member, advertiser=advertiser, changes=[FixChange(vi.id, "image_type", "Stock")])
    staff, own = GroundTruth.objects.order_by("id")
    assert (staff.source, staff.attribute, staff.value, staff.created_by) == ("staff_fix", "color", "Blue", reviewer)
    assert (own.source, own.advertiser, own.value, own.created_by) == ("advertiser_fix", "acme", "Stock", member)
    assert list(ManualFix.objects.order_by("id").values_list("scope", flat=True)) == ["staff", "advertiser"]
    assert cached_value(vi.image_id, "image_type", advertiser="acme") == "Stock"
    assert cached_value(vi.image_id, "image_type", advertiser="rival") == "Dealer"  # scoped
    assert cached_value(vi.image_id, "color", advertiser="rival") == "Blue"  # global


@pytest.mark.django_db
def test_a_fix_with_the_cache_unreachable_is_saved_and_delivered_by_the_sweep(
    reviewer, advertiser, make_picture, monkeypatch, django_capture_on_commit_callbacks
):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    real = classification_cache.fix_push

    def down(*, ground_truth_id):
        raise classification_cache.CacheUnavailable("connection refused")

    monkeypatch.setattr(classification_cache, "fix_push", down)
    with django_capture_on_commit_callbacks(execute=True):
        (fix,) = fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(vi.id, "image_type", "Stock")])
    outbox = FixOutbox.objects.get()
    assert outbox.delivered_at is None and outbox.attempts == 1 and "refused" in outbox.last_error
    assert fixes_undelivered_resend(older_than=timedelta(0)) == 0  # still down

    monkeypatch.setattr(classification_cache, "fix_push", real)
    assert fixes_undelivered_resend(older_than=timedelta(0)) == 1
    outbox.refresh_from_db()
    assert outbox.delivered_at is not None and outbox.attempts == 3
    assert cached_value(vi.image_id, "image_type") == "Stock"
    assert ManualFix.objects.get().id == fix.id


@needs_redis
@pytest.mark.django_db
def test_with_redis_down_a_fix_is_kept_and_the_sweep_delivers_it_when_redis_returns(
    reviewer, advertiser, make_picture, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from sitemaps.tasks import fixes_undelivered_resend as sweep_task

    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    real_caches = settings.CACHES
    dead = {**real_caches["default"], "LOCATION": "redis://127.0.0.1:1/0"}  # nothing listens there
    settings.CACHES = {"default": dead}
    with django_capture_on_commit_callbacks(execute=True):
        fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(vi.id, "color", "Green")])
    outbox = FixOutbox.objects.get()
    assert outbox.delivered_at is None and outbox.attempts == 1

    settings.CACHES = real_caches  # Redis is back
    FixOutbox.objects.filter(id=outbox.id).update(created_at=outbox.created_at - timedelta(minutes=1))
    assert sweep_task.delay() is not None
    outbox.refresh_from_db()
    assert outbox.delivered_at is not None
    assert "sitemaps-fix-outbox-sweep" in settings.CELERY_BEAT_SCHEDULE
    entry = classification_cache._cache.get(classification_cache.key(vi.image_id))
    assert entry is not None
    assert classification_cache.entry_values(entry, advertiser=None)["color"].value == "Green"


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_fixes_racing_on_one_picture_leave_the_newer(role_groups, make_user, advertiser, make_picture):
    from core.roles import Role

    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    users = [make_user(f"racer{i}", Role.REVIEWER) for i in range(2)]
    barrier = threading.Barrier(2)
    errors = []

    def fix(user, value):
        try:
            barrier.wait()
            fixes_apply(user=user, advertiser=advertiser, changes=[FixChange(vi.id, "image_type", value)])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=fix, args=(u, v)) for u, v in zip(users, ("Stock", "Placeholder"), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    fixes = list(ManualFix.objects.order_by("created_at", "id"))
    assert len(fixes) == 2
    first, second = fixes
    assert second.old_value == first.new_value  # serialised on the picture: the second saw the first
    from classification.selectors import image_values

    assert image_values(image_ids=[vi.image_id])[vi.image_id]["image_type"].value == second.new_value
    # Pushes arriving in the wrong order still leave the newer fix in the cache.
    classification_cache.fix_push(ground_truth_id=second.ground_truth_id)
    classification_cache.fix_push(ground_truth_id=first.ground_truth_id)
    assert cached_value(vi.image_id, "image_type") == second.new_value
