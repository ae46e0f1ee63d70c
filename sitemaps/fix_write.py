"""Writing a manual fix (ground truth + history + outbox row), carrying one to a near-duplicate picture, and
delivering fixes to the classification cache. Computation only: it imports no tasks (sitemaps.fixes, the
service, enqueues the delivery task; sitemaps.tasks runs what is here)."""

import logging
from collections.abc import Callable
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from classification import cache as classification_cache
from classification.cache import CacheUnavailable
from classification.services import fix_record
from sitemaps.models import Advertiser, FixOutbox, ManualFix, VehicleImage

log = logging.getLogger(__name__)

# "The cache is unreachable now": the outbox row stays undelivered and the sweep retries. classification.cache
# wraps Redis errors in CacheUnavailable; the others cover a broken connection outside its wrapping.
CACHE_ERRORS = (CacheUnavailable, ConnectionError, TimeoutError, OSError)


def fix_write(
    *,
    vehicle_image: VehicleImage,
    advertiser: Advertiser,
    attribute: str,
    old_value: str,
    value: str,
    user: AbstractBaseUser | None,
    staff: bool,
    deliver: Callable[[int], object],
    carried_from: ManualFix | None = None,
) -> ManualFix:
    """Write one fix: ground truth, a history row and an outbox row; ``deliver(outbox_id)`` runs after commit
    (the service enqueues the push task; a carried fix, already in a worker, pushes it there)."""
    now = timezone.now()
    ground_truth = fix_record(
        image=vehicle_image.image,
        attribute=attribute,
        value=value,
        user=user if carried_from is None else carried_from.user,
        advertiser=advertiser.slug,
        staff=staff,
        reference=f"sitemaps.manual_fix:{carried_from.id}"
        if carried_from
        else f"sitemaps.vehicle_image:{vehicle_image.id}",
        url=vehicle_image.url,
        at=now,
    )
    fix = ManualFix.objects.create(
        vehicle_image=vehicle_image,
        image=vehicle_image.image,
        advertiser=advertiser,
        attribute=attribute,
        old_value=old_value,
        new_value=value,
        scope=ManualFix.Scope.STAFF if staff else ManualFix.Scope.ADVERTISER,
        user=user if carried_from is None else None,
        url=vehicle_image.url,
        ground_truth=ground_truth,
        carried_from=carried_from,
        created_at=now,
    )
    outbox = FixOutbox.objects.create(manual_fix=fix, ground_truth_id=ground_truth.id, created_at=now)
    transaction.on_commit(lambda: deliver(outbox.id))
    return fix


@transaction.atomic
def fix_carry(*, original: ManualFix, vehicle_image: VehicleImage, old_value: str = "") -> ManualFix:
    """Record ``original`` again on the near-duplicate picture now at ``vehicle_image`` (same scope); the
    classification worker that found the twin pushes it to the cache itself once committed."""
    return fix_write(
        vehicle_image=vehicle_image,
        advertiser=original.advertiser,
        attribute=original.attribute,
        old_value=old_value,
        value=original.new_value,
        user=None,
        staff=original.scope == ManualFix.Scope.STAFF,
        carried_from=original,
        deliver=lambda outbox_id: fix_deliver(outbox_id=outbox_id),
    )


def fix_deliver(*, outbox_id: int) -> bool:
    """Push one fix to the classification cache; True once delivered (now or before)."""
    row = FixOutbox.objects.filter(id=outbox_id).first()
    if row is None or row.delivered_at is not None:
        return row is not None
    try:
        classification_cache.fix_push(ground_truth_id=row.ground_truth_id)
    except CACHE_ERRORS as exc:
        log.warning("fix push failed; the sweep will retry", extra={"outbox_id": outbox_id, "error": str(exc)})
        FixOutbox.objects.filter(id=outbox_id).update(attempts=F("attempts") + 1, last_error=str(exc)[:200])
        return False
    FixOutbox.objects.filter(id=outbox_id, delivered_at__isnull=True).update(
        delivered_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
    )
    return True


def fixes_undelivered_resend(*, older_than: timedelta = timedelta(seconds=15), limit: int = 500) -> int:
    """Re-send fixes the cache has not acknowledged (Redis or workers were down). Returns how many arrived.

    Oldest first; the order does not matter for correctness because the cache keeps the newer fix.
    """
    cutoff = timezone.now() - older_than
    ids = list(
        FixOutbox.objects.filter(delivered_at__isnull=True, created_at__lte=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    delivered = 0
    for outbox_id in ids:
        if fix_deliver(outbox_id=outbox_id):
            delivered += 1
        else:
            break  # the cache is still unreachable; the next sweep tries again
    return delivered
