"""Classifying a scrape: split its pending pictures into chunks, classify each chunk through classification,
count progress in the Scrape row, and finish (reused pictures ⇒ Placeholder, failure share, fix carry-over).

Counting is idempotent: a picture is counted only by the statement that moves it out of "pending".
"""

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from classification import services as classification_services
from classification.imaging import hamming
from classification.models import Prediction
from classification.selectors import image_values
from classification.vocabulary import Attribute, ImageType
from core.retry import RETRY
from sitemaps.fix_write import fix_carry, url_fixes_follow
from sitemaps.models import ManualFix, Scrape, VehicleImage

log = logging.getLogger(__name__)


def scrape_chunks(*, scrape_id: int) -> list[list[int]]:
    """Mark the scrape running and return the ids of its pending pictures in chunks (empty: it is finished)."""
    size = settings.SPOTCHECK_SITEMAP_CHUNK
    now = timezone.now()
    Scrape.objects.filter(id=scrape_id, status=Scrape.Status.QUEUED).update(
        status=Scrape.Status.RUNNING, started_at=now
    )
    Scrape.objects.filter(id=scrape_id).update(progressed_at=now)
    ids = list(
        VehicleImage.objects.filter(scrape_id=scrape_id, status=VehicleImage.Status.PENDING)
        .order_by("id")
        .values_list("id", flat=True)
    )
    if not ids:
        scrape_finish(scrape_id=scrape_id)
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def scrape_chunk_classify(*, scrape_id: int, vehicle_image_ids: list[int], final_attempt: bool = True) -> list[int]:
    """Classify the still-pending pictures among ``vehicle_image_ids`` and count them.

    Returns the ids left pending by a transient fetch error (to retry); on the final attempt they are
    recorded as failed with their reason instead.
    """
    scrape = Scrape.objects.select_related("advertiser").filter(id=scrape_id).first()
    if scrape is None or scrape.finished:
        return []
    rows = list(
        VehicleImage.objects.filter(
            id__in=vehicle_image_ids, scrape_id=scrape_id, status=VehicleImage.Status.PENDING
        ).values_list("id", "url")
    )
    if not rows:
        return []
    urls = list(dict.fromkeys(url for _id, url in rows))
    outcomes = {o.url: o for o in classification_services.urls_classify(urls=urls, advertiser=scrape.advertiser.slug)}

    groups: dict[tuple, list[int]] = defaultdict(list)
    retry: list[int] = []
    for row_id, url in rows:
        outcome = outcomes.get(url)
        if outcome is not None and outcome.image_id is not None and not outcome.error:
            groups[("done", outcome.image_id, bool(outcome.cached))].append(row_id)
        else:
            error = (outcome.error if outcome is not None else "") or "no_result"
            # The one policy (core.retry): timeouts, connection, DNS, 429 and 5xx are retried, other 4xx never.
            if RETRY.reason_transient(error) and not final_attempt:
                retry.append(row_id)
            else:
                groups[("failed", str(error)[:40])].append(row_id)

    done = from_cache = failed = 0
    classified: list[int] = []
    with transaction.atomic():
        for key, ids in groups.items():
            pending = VehicleImage.objects.filter(id__in=ids, scrape_id=scrape_id, status=VehicleImage.Status.PENDING)
            if key[0] == "done":
                moved = pending.update(status=VehicleImage.Status.DONE, image_id=key[1], error="")
                done += moved
                from_cache += moved if key[2] else 0
                if moved:
                    classified.extend(ids)
            else:
                failed += pending.update(status=VehicleImage.Status.FAILED, error=key[1])
        if done or failed:
            Scrape.objects.filter(id=scrape_id).update(
                done=F("done") + done,
                from_cache=F("from_cache") + from_cache,
                failed=F("failed") + failed,
                progressed_at=timezone.now(),
            )
    if classified:
        url_fixes_follow(vehicle_image_ids=classified)  # fixes made before the picture could be downloaded
        fixes_carry_over(vehicle_image_ids=classified)
    if not retry:
        scrape_finish_if_complete(scrape_id=scrape_id)
    return retry


def scrapes_stalled(*, silent_for: timedelta) -> list[int]:
    """Unfinished runs that counted nothing for ``silent_for`` (a chunk lost with a worker, a broker that
    dropped a message), and mark them as progressing now so the next sweep gives the resumed run its time."""
    cutoff = timezone.now() - silent_for
    stalled = Scrape.objects.filter(status__in=[Scrape.Status.QUEUED, Scrape.Status.RUNNING]).filter(
        Q(progressed_at__lt=cutoff) | Q(progressed_at__isnull=True, created_at__lt=cutoff)
    )
    ids = list(stalled.values_list("id", flat=True))
    Scrape.objects.filter(id__in=ids).update(progressed_at=timezone.now())
    return ids


def scrape_finish_if_complete(*, scrape_id: int) -> bool:
    complete = Scrape.objects.filter(
        id=scrape_id, status__in=[Scrape.Status.QUEUED, Scrape.Status.RUNNING], total__lte=F("done") + F("failed")
    ).exists()
    if complete:
        scrape_finish(scrape_id=scrape_id)
    return complete


def scrape_finish(*, scrape_id: int) -> None:
    """Close a run once: apply the reused-picture rule, count ML failures, set done (or failed when nothing
    could be classified)."""
    with transaction.atomic():
        scrape = Scrape.objects.select_for_update().filter(id=scrape_id).first()
        if scrape is None or scrape.finished:
            return
        reused_placeholder_apply(advertiser_id=scrape.advertiser_id)
        scrape.ml_failures = ml_failures_count(scrape_id=scrape_id)
        scrape.status = Scrape.Status.FAILED if scrape.total and scrape.failed == scrape.total else Scrape.Status.DONE
        scrape.finished_at = timezone.now()
        scrape.save(update_fields=["ml_failures", "status", "finished_at"])


def reused_image_ids(*, advertiser_id: int) -> list[int]:
    """Pictures shown on at least SPOTCHECK_SITEMAP_REUSED_MIN_VEHICLES distinct vehicles of the advertiser."""
    return list(
        VehicleImage.objects.filter(
            vehicle__advertiser_id=advertiser_id, vehicle__active=True, active=True, image__isnull=False
        )
        .values("image_id")
        .annotate(vehicles=Count("vehicle_id", distinct=True))
        .filter(vehicles__gte=settings.SPOTCHECK_SITEMAP_REUSED_MIN_VEHICLES)
        .values_list("image_id", flat=True)
    )


def reused_placeholder_apply(*, advertiser_id: int) -> int:
    """The same picture across many vehicles of one advertiser is a Placeholder (a "photo coming soon" card)."""
    ids = reused_image_ids(advertiser_id=advertiser_id)
    return classification_services.images_reused_placeholder_apply(image_ids=ids) if ids else 0


def ml_failures_count(*, scrape_id: int) -> int:
    """Pictures of the run whose ML image type is Placeholder or none (seed 002's "failed to respond" sign)."""
    useful = Prediction.objects.filter(
        attribute=Attribute.IMAGE_TYPE, value__in=[ImageType.DEALER, ImageType.STOCK]
    ).values("image_id")
    return (
        VehicleImage.objects.filter(scrape_id=scrape_id, status=VehicleImage.Status.DONE)
        .exclude(image_id__in=useful)
        .count()
    )


def fixes_carry_over(*, vehicle_image_ids: list[int]) -> int:
    """A fix made on a picture that came back under a new URL as a near-duplicate is carried over.

    Same bytes need nothing (the fix follows the picture). A re-encoded or resized copy is found by perceptual
    hash among the pictures this advertiser's sitemap fixed (few, so compared here rather than scanning every
    picture per row), and each of its latest fixes is recorded again on the new picture with a reference to
    the original. A row is checked once, when its new URL is first classified.
    """
    rows = list(
        VehicleImage.objects.filter(id__in=vehicle_image_ids, url_changed=True, image__isnull=False).select_related(
            "vehicle__advertiser", "image"
        )
    )
    if not rows:
        return 0
    VehicleImage.objects.filter(id__in=[r.id for r in rows]).update(url_changed=False)
    max_distance = settings.SPOTCHECK_NEAR_DUPLICATE_DISTANCE
    carried = 0
    by_advertiser: dict[int, list[VehicleImage]] = defaultdict(list)
    for row in rows:
        if row.image.phash is not None:
            by_advertiser[row.vehicle.advertiser_id].append(row)
    for advertiser_id, items in by_advertiser.items():
        advertiser = items[0].vehicle.advertiser
        fixed = dict(
            ManualFix.objects.filter(advertiser_id=advertiser_id, image__phash__isnull=False)
            .values_list("image_id", "image__phash")
            .distinct()
        )
        if not fixed:
            continue
        current = image_values(image_ids=[r.image_id for r in items], advertiser=advertiser.slug)
        for row in items:
            unfixed = [a for a, resolved in current[row.image_id].items() if not resolved.fixed]
            twins = [
                image_id
                for image_id, phash in fixed.items()
                if image_id != row.image_id and hamming(phash, row.image.phash) <= max_distance
            ]
            if not unfixed or not twins:
                continue
            for original in _latest_fixes_of(advertiser_id=advertiser_id, image_ids=twins, attributes=unfixed):
                fix_carry(
                    original=original,
                    vehicle_image=row,
                    old_value=current[row.image_id][original.attribute].value or "",
                )
                carried += 1
    return carried


def _latest_fixes_of(*, advertiser_id: int, image_ids: list[int], attributes: list[str]) -> list[ManualFix]:
    latest: dict[str, ManualFix] = {}
    for fix in ManualFix.objects.filter(
        Q(advertiser_id=advertiser_id), image_id__in=image_ids, attribute__in=attributes
    ).order_by("created_at", "id"):
        latest[fix.attribute] = fix
    return list(latest.values())
