"""Writing a manual fix (ground truth + history + outbox row), carrying one to a near-duplicate picture,
recording URL-keyed fixes on pictures once downloaded, and delivering fixes to the classification cache.
Computation only: it imports no tasks (sitemaps.fixes, the service, enqueues the delivery task;
sitemaps.tasks runs what is here)."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from classification import cache as classification_cache
from classification.cache import CacheUnavailable
from classification.services import fix_record
from core.lookups import AnyOf
from sitemaps.models import Advertiser, FixOutbox, ManualFix, VehicleImage
from sitemaps.selectors import sitemap_values, url_hash

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
    at: datetime | None = None,
) -> ManualFix:
    """Write one fix: ground truth, a history row and an outbox row; ``deliver(outbox_id)`` runs in the
    transaction and arranges the push after commit (the service through core.outbox; a carried fix, already in
    a worker, pushes it there). ``at`` dates
    the ground truth (a URL fix followed onto its picture keeps its own time, so a newer fix still wins)."""
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
        at=at or now,
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
    _outbox_add(fix=fix, ground_truth_id=ground_truth.id, deliver=deliver)
    return fix


def _outbox_add(*, fix: ManualFix, ground_truth_id: int | None, deliver: Callable[[int], object]) -> None:
    outbox = FixOutbox.objects.create(manual_fix=fix, ground_truth_id=ground_truth_id, created_at=fix.created_at)
    deliver(outbox.id)


def url_fix_write(
    *,
    vehicle_image: VehicleImage,
    advertiser: Advertiser,
    attribute: str,
    old_value: str,
    value: str,
    user: AbstractBaseUser,
    staff: bool,
    deliver: Callable[[int], object],
) -> ManualFix:
    """A fix of a picture never downloaded: keyed by its URL until the picture exists (no ground truth yet:
    ground truth is about a picture's bytes)."""
    fix = ManualFix.objects.create(
        vehicle_image=vehicle_image,
        image=None,
        advertiser=advertiser,
        attribute=attribute,
        old_value=old_value,
        new_value=value,
        scope=ManualFix.Scope.STAFF if staff else ManualFix.Scope.ADVERTISER,
        user=user,
        url=vehicle_image.url,
        url_hash=url_hash(vehicle_image.url),
        created_at=timezone.now(),
    )
    _outbox_add(fix=fix, ground_truth_id=None, deliver=deliver)
    return fix


def _deliver_here(outbox_id: int) -> None:
    transaction.on_commit(lambda: fix_deliver(outbox_id=outbox_id))


def url_fixes_follow(*, vehicle_image_ids: list[int], urls: dict[int, str] | None = None) -> int:
    """Record the URL-keyed fixes of these just-downloaded pictures on the pictures themselves (once each,
    with the original fix's time so a newer fix made since still wins). Returns how many were recorded.
    Runs in a classification worker, which pushes the recorded fixes to the cache itself once committed.
    ``urls``: each row's URL when the caller has just read the rows and given them their picture (saves
    reading them again; the rows a fix is recorded on are read afresh and checked all the same)."""
    # Almost never is there a URL fix: find them from the rows' URLs first, load the rows only for those.
    if urls is None:
        urls = dict(VehicleImage.objects.filter(id__in=vehicle_image_ids, image__isnull=False).values_list("id", "url"))
    hashes = {row: url_hash(urls[row]) for row in vehicle_image_ids if row in urls}
    if not hashes:
        return 0
    pending = list(
        ManualFix.objects.filter(AnyOf(F("url_hash"), set(hashes.values())), image__isnull=True)
        .exclude(carried_to__isnull=False)
        .select_related("advertiser", "user")
        .order_by("created_at", "id")
    )
    if not pending:
        return 0
    wanted = {fix.url_hash for fix in pending}
    by_hash: dict[str, list[VehicleImage]] = {}
    for vi in VehicleImage.objects.filter(
        id__in=[row for row, h in hashes.items() if h in wanted], image__isnull=False
    ).select_related("vehicle__advertiser", "image"):
        by_hash.setdefault(url_hash(vi.url), []).append(vi)
    followed = 0
    for url_fix in pending:
        for vi in by_hash.get(url_fix.url_hash, []):
            # Recorded from the sitemap it was made in (its history row names that advertiser's picture); a
            # staff fix then applies everywhere from the picture, like any staff fix.
            if vi.url != url_fix.url or vi.vehicle.advertiser_id != url_fix.advertiser_id:
                continue
            with transaction.atomic():
                current = sitemap_values(advertiser=url_fix.advertiser, vehicle_images=[vi])[vi.id]
                fix_write(
                    vehicle_image=vi,
                    advertiser=url_fix.advertiser,
                    attribute=url_fix.attribute,
                    old_value=current[url_fix.attribute].value or "",
                    value=url_fix.new_value,
                    user=None,
                    staff=url_fix.scope == ManualFix.Scope.STAFF,
                    carried_from=url_fix,
                    at=url_fix.created_at,
                    deliver=_deliver_here,
                )
            followed += 1
            break  # once per URL fix
    return followed


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
        deliver=_deliver_here,
    )


def fix_deliver(*, outbox_id: int) -> bool:
    """Push one fix to the classification cache; True once delivered (now or before)."""
    row = FixOutbox.objects.filter(id=outbox_id).first()
    if row is None or row.delivered_at is not None:
        return row is not None
    try:
        if row.ground_truth_id is not None:
            classification_cache.fix_push(ground_truth_id=row.ground_truth_id)
        else:
            fix = ManualFix.objects.select_related("advertiser").get(id=row.manual_fix_id)
            classification_cache.url_fix_push(
                url=fix.url,
                attribute=fix.attribute,
                value=fix.new_value,
                advertiser=fix.advertiser.slug if fix.scope == ManualFix.Scope.ADVERTISER else None,
                user_id=fix.user_id,
                at=fix.created_at,
                fix_id=fix.id,
            )
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
