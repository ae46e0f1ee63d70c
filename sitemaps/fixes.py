"""Manual fixes from the review page and the API: history row + ground truth + outbox row in one transaction,
then a push to the classification cache queued as a task (retried by a periodic sweep until the cache
acknowledges it). Writing, carrying and delivering a fix is computation, in sitemaps.fix_write."""

from dataclasses import dataclass, replace

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from classification.vocabulary import DROPDOWN_DEFAULTS, ML_ATTRIBUTES, is_valid
from core.errors import ApplicationError, Conflict
from core.roles import is_staff_reviewer
from sitemaps import tasks
from sitemaps.fix_write import fix_write
from sitemaps.models import Advertiser, ManualFix, VehicleImage
from sitemaps.selectors import sitemap_values


class VehicleImageNotFound(ApplicationError):
    """The picture is not in this advertiser's sitemap (or not visible to the caller): answered 404."""

    code, status = "not_found", 404


class PictureNotClassified(Conflict):
    """The picture could not be downloaded yet, so there is nothing to fix (the review page answers 400)."""


@dataclass(frozen=True)
class FixChange:
    vehicle_image_id: int
    attribute: str
    value: str
    # The value the dropdown preselected when the page was drawn: an unchanged dropdown is not a change,
    # even if somebody else fixed the picture meanwhile. None (the API): compare with the current value.
    shown: str | None = None


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
            raise ApplicationError(f"{change.value!r} is not a valid {change.attribute}")
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
            fix_write(
                vehicle_image=vi,
                advertiser=advertiser,
                attribute=change.attribute,
                old_value=resolved.value or "",
                value=change.value,
                user=user,
                staff=staff,
                deliver=lambda outbox_id: tasks.fix_deliver.delay(outbox_id),
            )
        )
        # A second change of the same attribute in one request compares with what was just written.
        current[vi.id][change.attribute] = replace(resolved, value=change.value)
    return made
