"""Manual fixes from the review page and the API: history row + ground truth + outbox row in one transaction,
then a push to the classification cache queued as a task (retried by a periodic sweep until the cache
acknowledges it). Writing, carrying and delivering a fix is computation, in sitemaps.fix_write.

A picture never downloaded can be fixed too: the fix is keyed by its URL (history + outbox, pushed to the URL's
cache entry) and recorded on the picture once it is downloaded (``fix_write.url_fixes_follow``)."""

from dataclasses import dataclass, replace

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from classification.vocabulary import DROPDOWN_DEFAULTS, ML_ATTRIBUTES, is_valid
from core.errors import ApplicationError
from core.outbox import enqueue_on_commit
from core.roles import is_staff_reviewer
from sitemaps import tasks
from sitemaps.fix_write import fix_write, url_fix_write
from sitemaps.models import Advertiser, ManualFix, VehicleImage
from sitemaps.selectors import sitemap_values


class VehicleImageNotFound(ApplicationError):
    """The picture is not in this advertiser's sitemap (or not visible to the caller): answered 404."""

    code, status = "not_found", 404


class ScopeNotAllowed(ApplicationError):
    """Only staff may fix a picture everywhere."""

    code, status = "permission_denied", 403


@dataclass(frozen=True)
class FixChange:
    vehicle_image_id: int
    attribute: str
    value: str
    # The value the dropdown preselected when the page was drawn: an unchanged dropdown is not a change,
    # even if somebody else fixed the picture meanwhile. None (the API): compare with the current value.
    shown: str | None = None
    # ManualFix.Scope: None means the caller's own (staff: everywhere; advertiser user: this advertiser).
    scope: str | None = None


def _locked(queryset):
    # Serialises fixes of one picture on PostgreSQL so "old value" is exact; SQLite's writer lock does that.
    if connection.features.has_select_for_update_of:
        return queryset.select_for_update(of=("self",))
    return queryset.select_for_update()


def _deliver(outbox_id: int) -> None:
    # In the fix's transaction: the push is requested through the outbox, so a broker that is down costs
    # nothing but a later delivery (the request still gets its normal answer).
    enqueue_on_commit(tasks.fix_deliver, outbox_id)


@transaction.atomic
def fixes_apply(*, user: AbstractBaseUser, advertiser: Advertiser, changes: list[FixChange]) -> list[ManualFix]:
    """Apply every real change: each writes ground truth (staff: global unless scoped to this advertiser;
    advertiser user: this advertiser), a history row and an outbox row; the cache push is queued after
    commit. Unchanged values are skipped. A picture never downloaded is fixed by its URL."""
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
    current = sitemap_values(advertiser=advertiser, vehicle_images=list(rows.values()))
    is_staff = is_staff_reviewer(user)
    made: list[ManualFix] = []
    for change in changes:
        if change.scope == ManualFix.Scope.STAFF and not is_staff:
            raise ScopeNotAllowed("only staff may fix a picture everywhere")
        staff = is_staff and change.scope != ManualFix.Scope.ADVERTISER
        vi = rows[change.vehicle_image_id]
        resolved = current[vi.id][change.attribute]
        preselected = resolved.value or DROPDOWN_DEFAULTS[change.attribute]
        if change.value == preselected or (change.shown is not None and change.value == change.shown):
            continue
        write = fix_write if vi.image_id is not None else url_fix_write
        made.append(
            write(
                vehicle_image=vi,
                advertiser=advertiser,
                attribute=change.attribute,
                old_value=resolved.value or "",
                value=change.value,
                user=user,
                staff=staff,
                deliver=_deliver,
            )
        )
        # A second change of the same attribute in one request compares with what was just written.
        current[vi.id][change.attribute] = replace(resolved, value=change.value)
    return made
