"""Manual fixes from the review page and the API: history row + ground truth + outbox row in one transaction,
then a push to the classification cache (retried by a periodic sweep until the cache acknowledges it)."""

import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from classification import cache as classification_cache
from classification.cache import CacheUnavailable
from classification.services import fix_record
from classification.vocabulary import DROPDOWN_DEFAULTS, ML_ATTRIBUTES, is_valid
from core.outbox import enqueue_on_commit
from core.roles import is_staff_reviewer
from sitemaps.models import Advertiser, FixOutbox, ManualFix, VehicleImage
from sitemaps.selectors import sitemap_values

log = logging.getLogger(__name__)


class VehicleImageNotFound(LookupError):
    """The picture is not in this advertiser's sitemap (or not visible to the caller): answered 404."""


class PictureNotClassified(ValueError):
    """The picture could not be downloaded yet, so there is nothing to fix."""


@dataclass(frozen=True)
class FixChange:
    vehicle_image_id: int
    attribute: str
    value: str
    # The value the dropdown preselected when the page was drawn: an unchanged dropdown is not a change,
    # even if somebody else fixed the picture meanwhile. None (the API): compare with the current value.
    shown: str | None = None


# "The cache is unreachable now": the outbox row stays undelivered and the sweep retries. classification.cache
# wraps Redis errors in CacheUnavailable; the others cover a broken connection outside its wrapping.
CACHE_ERRORS = (CacheUnavailable, ConnectionError, TimeoutError, OSError)


def _locked(queryset):
    # Serialises fixes of one picture on PostgreSQL so "old value" is exact; SQLite's writer lock does that.
    if connection.features.has_select_for_update_of:
        return queryset.select_for_update(of=("self",))
    return queryset.select_for_update()


@transaction.atomic
def fixes_apply(*, user: AbstractBaseUser, advertiser: Advertiser, changes: list[FixChange]) -> list[ManualFix]:
    """Apply every real change: each writes ground truth (staff: global; advertiser user: this advertiser),
    a history row and an outbox row; the cache push is queued after commit. Unchanged values are skipped."""
    for change in changes:
        if change.attribute not in ML_ATTRIBUTES or not is_valid(change.attribute, change.value):
            raise ValueError(f"{change.value!r} is not a valid {change.attribute}")
    ids = {c.vehicle_image_id for c in changes}
    rows = {
        vi.id: vi
        for vi in _locked(
            VehicleImage.objects.filter(id__in=ids, vehicle__advertiser=advertiser).select_related("vehicle", "image")
        )
    }
    missing = ids - rows.keys()
    if missing:
        raise VehicleImageNotFound(f"vehicle image {min(missing)} is not in {advertiser.slug}'s sitemap")
    if any(vi.image_id is None for vi in rows.values()):
        raise PictureNotClassified("the picture has not been downloaded and classified yet")
    current = sitemap_values(advertiser=advertiser, vehicle_images=list(rows.values()))
    staff = is_staff_reviewer(user)
    made: list[ManualFix] = []
    for change in changes:
        vi = rows[change.vehicle_image_id]
        resolved = current[vi.id][change.attribute]
        preselected = resolved.value or DROPDOWN_DEFAULTS[change.attribute]
        if change.value == preselected or (change.shown is not None and change.value == change.shown):
            continue
        made.append(
            _fix_write(
                vehicle_image=vi,
                advertiser=advertiser,
                attribute=change.attribute,
                old_value=resolved.value or "",
                value=change.value,
                user=user,
                staff=staff,
            )
        )
        # A second change of the same attribute in one request compares with what was just written.
        current[vi.id][change.attribute] = replace(resolved, value=change.value)
    return made


def _fix_write(
    *,
    vehicle_image: VehicleImage,
    advertiser: Advertiser,
    attribute: str,
    old_value: str,
    value: str,
    user: AbstractBaseUser | None,
    staff: bool,
    carried_from: ManualFix | None = None,
) -> ManualFix:
    from sitemaps.tasks import fix_deliver

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
    enqueue_on_commit(fix_deliver, outbox.id)
    return fix


@transaction.atomic
def fix_carry(*, original: ManualFix, vehicle_image: VehicleImage, old_value: str = "") -> ManualFix:
    """Record ``original`` again on the near-duplicate picture now at ``vehicle_image`` (same scope)."""
    return _fix_write(
        vehicle_image=vehicle_image,
        advertiser=original.advertiser,
        attribute=original.attribute,
        old_value=old_value,
        value=original.new_value,
        user=None,
        staff=original.scope == ManualFix.Scope.STAFF,
        carried_from=original,
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
