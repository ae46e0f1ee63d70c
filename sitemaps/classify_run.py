"""Classifying a scrape: split its pending pictures into chunks; each chunk is fetched and keyed (stage 1,
fetch queue), its new pictures classified (stage 2, classify queue); progress is counted in the Scrape row
by both stages, and the run finishes (reused pictures ⇒ Placeholder, failure share, fix carry-over).

Counting is idempotent: a picture is counted only by the statement that moves it out of "pending".
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.utils import timezone

from classification import services as classification_services
from classification.imaging import hamming
from classification.models import Prediction
from classification.selectors import image_values
from classification.vocabulary import Attribute, ImageType
from core.lookups import AnyOf
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


@dataclass
class ChunkFetched:
    """What the fetch stage of a chunk left to do: rows to fetch again, pictures to classify."""

    retry: list[int] = field(default_factory=list)  # rows left pending by a transient fetch error
    retry_after: float | None = None  # the longest wait a server asked for (Retry-After) among those rows
    to_classify: list[tuple[int, list[int]]] = field(default_factory=list)  # (picture, its rows) for stage 2


def scrape_chunk_fetch(*, scrape_id: int, vehicle_image_ids: list[int], final_attempt: bool = True) -> ChunkFetched:
    """Stage 1 for the still-pending pictures among ``vehicle_image_ids`` (the fetch queue; never decodes).

    Rows whose picture is known (a 304, or bytes already classified) are counted done at once, refused
    ones failed with their reason; new pictures are returned for stage 2 with their rows. Rows that hit a
    transient fetch error are returned to retry; on the final attempt they are recorded as failed instead.
    """
    scrape = Scrape.objects.filter(id=scrape_id).first()
    if scrape is None or scrape.finished:
        return ChunkFetched()
    rows = list(
        VehicleImage.objects.filter(
            AnyOf(F("id"), vehicle_image_ids), scrape_id=scrape_id, status=VehicleImage.Status.PENDING
        ).values_list("id", "url", "image_id", "url_changed")
    )
    if not rows:
        return ChunkFetched()
    result = ChunkFetched()

    def count(checks: dict) -> None:
        """The rows moved and counted by what their URLs answered, in the transaction that records the answers."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        new: dict[int, list[int]] = defaultdict(list)
        for row_id, url, shown, _changed in rows:
            check = checks.get(url)
            if check is not None and check.image_id is not None and not check.error:
                if check.pending:
                    new[check.image_id].append(row_id)
                else:
                    # A re-check (304) mostly finds the picture the row already shows: no image to write.
                    groups[("done", None if shown == check.image_id else check.image_id, True)].append(row_id)
            else:
                error = (check.error if check is not None else "") or "no_result"
                # The one policy (core.retry): timeouts, connection, DNS, 429 and 5xx are retried, other 4xx never.
                if RETRY.reason_transient(error) and not final_attempt:
                    result.retry.append(row_id)
                else:
                    groups[("failed", str(error)[:40])].append(row_id)
        result.to_classify = sorted(new.items())
        if result.retry:
            result.retry_after = classification_services.checks_retry_after(checks=checks.values())
        _rows_count(scrape_id=scrape_id, groups=groups, read={row: (url, changed) for row, url, _s, changed in rows})

    # All the chunk's downloads share half the task's time limit (200 URLs from a CDN that answers each at the
    # last second would outlast it): URLs not reached by then fail as timeouts and are retried below.
    classification_services.urls_check(
        urls=list(dict.fromkeys(url for _id, url, _image, _changed in rows)),
        deadline=settings.CELERY_TASK_SOFT_TIME_LIMIT / 2,
        record_with=count,
    )
    if not result.retry and not result.to_classify:
        scrape_finish_if_complete(scrape_id=scrape_id)
    return result


@dataclass
class PicturesClassified:
    """What stage 2 of a chunk did: rows counted, and pictures to classify again (a backend failing
    transiently, e.g. throttling) with the longest wait a backend asked for (Retry-After)."""

    counted: int = 0
    retry: list[tuple[int, list[int]]] = field(default_factory=list)
    retry_after: float | None = None


def scrape_pictures_classify(
    *, scrape_id: int, pictures: list[tuple[int, list[int]]], final_attempt: bool = True
) -> PicturesClassified:
    """Stage 2 for the new pictures of a chunk (the classify queue): classify them and count their rows.

    A picture whose bytes do not decode fails its rows with the reason; one left without a result (staged
    bytes lost) keeps its rows pending for the stalled-run sweep. One the backend failed transiently keeps
    its rows pending and is returned to retry; on the final attempt its rows are counted done without values.
    """
    scrape = Scrape.objects.filter(id=scrape_id).first()
    if scrape is None or scrape.finished or not pictures:
        return PicturesClassified()
    results = classification_services.images_classify(image_ids=[image_id for image_id, _rows in pictures])
    groups: dict[tuple, list[int]] = defaultdict(list)
    outcome = PicturesClassified()
    for image_id, row_ids in pictures:
        result = results[image_id]
        if result.status == "no_values" and result.transient and not final_attempt:
            outcome.retry.append((image_id, row_ids))
        elif result.finished:
            groups[("done", image_id, result.status == "known")].extend(row_ids)
        elif result.status == "rejected":
            groups[("failed", str(result.error)[:40])].extend(row_ids)
    waits = [results[image_id].retry_after for image_id, _rows in outcome.retry]
    outcome.retry_after = max((w for w in waits if w is not None), default=None)
    outcome.counted = _rows_count(scrape_id=scrape_id, groups=groups)
    scrape_finish_if_complete(scrape_id=scrape_id)
    return outcome


def _rows_count(
    *, scrape_id: int, groups: dict[tuple, list[int]], read: dict[int, tuple[str, bool]] | None = None
) -> int:
    """Move rows out of "pending" and count them in the Scrape row, in one transaction; a row is counted
    only by the statement that moves it, so a chunk run twice counts once. Fixes follow done rows.

    ``read``: each row's URL and ``url_changed`` as the caller read them while the rows were pending (stage 1),
    so that fixes follow without reading the rows again: a URL fix is looked up by those URLs, and only the
    rows whose URL changed are compared with fixed pictures (a re-check of an unchanged sitemap has none).

    ``groups``: ("done", image_id, from_cache) or ("failed", reason) → row ids; image_id None for rows that
    already show their picture (a re-check). Done rows are moved by one UPDATE per kind (from cache or
    classified now; rows already showing their picture apart) naming each row's picture, not one per picture.
    """
    done = from_cache = failed = 0
    classified: list[int] = []
    done_images: dict[tuple[bool, bool], dict[int, int | None]] = {}
    for key, ids in groups.items():
        if key[0] == "done":
            done_images.setdefault((key[2], key[1] is None), {}).update(dict.fromkeys(ids, key[1]))
    # Without a savepoint: inside stage 1's transaction (urls_check's record_with) a failure rolls it all back.
    with transaction.atomic(savepoint=False):
        for (cached, shown), images in done_images.items():
            pending = VehicleImage.objects.filter(
                AnyOf(F("id"), images), scrape_id=scrape_id, status=VehicleImage.Status.PENDING
            )
            if shown:
                moved = pending.update(status=VehicleImage.Status.DONE, error="")
            else:
                moved = pending.update(
                    status=VehicleImage.Status.DONE,
                    error="",
                    image_id=Case(*(When(id=row, then=Value(image)) for row, image in images.items())),
                )
            done += moved
            from_cache += moved if cached else 0
            if moved:
                classified.extend(images)
        for key, ids in groups.items():
            if key[0] == "failed":
                pending = VehicleImage.objects.filter(
                    AnyOf(F("id"), ids), scrape_id=scrape_id, status=VehicleImage.Status.PENDING
                )
                failed += pending.update(status=VehicleImage.Status.FAILED, error=key[1])
        if done or failed:
            Scrape.objects.filter(id=scrape_id).update(
                done=F("done") + done,
                from_cache=F("from_cache") + from_cache,
                failed=F("failed") + failed,
                progressed_at=_progressed_now(),
            )
    if classified:
        if read is None:
            url_fixes_follow(vehicle_image_ids=classified)  # fixes made before the picture could be downloaded
            fixes_carry_over(vehicle_image_ids=classified)
        else:
            url_fixes_follow(vehicle_image_ids=classified, urls={row: read[row][0] for row in classified})
            fixes_carry_over(vehicle_image_ids=[row for row in classified if read[row][1]])
    return done + failed


def _progressed_now() -> Case:
    """``progressed_at`` = now, unless a chunk waiting to retry set it later (``scrape_retry_wait``)."""
    now = timezone.now()
    return Case(When(progressed_at__gt=now, then=F("progressed_at")), default=Value(now))


def scrape_retry_wait(*, scrape_id: int, seconds: float) -> None:
    """A chunk of the run retries in ``seconds`` (backoff, or a server's Retry-After): the stalled-run sweep
    must not resume the run before then, or it would ask a busy server again sooner than it said."""
    retry_at = timezone.now() + timedelta(seconds=seconds)
    Scrape.objects.filter(id=scrape_id).filter(Q(progressed_at__isnull=True) | Q(progressed_at__lt=retry_at)).update(
        progressed_at=retry_at
    )


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
    if not vehicle_image_ids:  # no statement, but building the query cost a re-check chunk 5 % of its CPU
        return 0
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
