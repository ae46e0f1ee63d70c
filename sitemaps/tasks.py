"""Celery tasks of the sitemaps app: thin wrappers that take ids and call services; safe to run twice."""

import random
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from core import broker
from core.retry import RETRY
from sitemaps import classify_run, fix_write


@shared_task(name="sitemaps.tasks.scrape_classify")
def scrape_classify(scrape_id: int) -> int:
    """Fan a scrape's pending pictures out in chunks (queue "fetch"). Returns the number of chunks."""
    chunks = classify_run.scrape_chunks(scrape_id=scrape_id)
    for ids in chunks:
        scrape_chunk_classify.delay(scrape_id, ids)
    return len(chunks)


# Stage 2 of a scrape waits behind the classify API's pictures (an interactive request): on Redis, 0 is
# polled first and 9 last (kombu's priority steps); the filesystem broker ignores it.
SCRAPE_CLASSIFY_PRIORITY = 9
STAGE_TWO_QUEUE = "classify"  # where scrape_pictures_classify is routed (settings.CELERY_TASK_ROUTES)


@shared_task(name="sitemaps.tasks.scrape_chunk_classify")
def scrape_chunk_classify(scrape_id: int, vehicle_image_ids: list[int], attempt: int = 0, held: int = 0) -> int:
    """Stage 1 of a chunk (queue "fetch"): download and key; new pictures go to the classify queue in tasks
    of at most SPOTCHECK_CLASSIFY_CHUNK pictures (so that a chunk's pictures are shared by the classify
    processes). While stage 2 is SPOTCHECK_CLASSIFY_AHEAD pictures behind, the chunk waits instead (bounded
    staged bytes; the classify API's pictures never wait for scrapes). Pictures that failed transiently
    (core.retry: timeouts, connection, 429, 5xx) are retried with the policy's backoff, a few times, never
    sooner than a server's ``Retry-After``.

    The retry is a new message (not task.retry) so it only carries the pictures still pending. ``held``: how
    many times in a row the chunk found stage 2 full.
    """
    if _stage_two_is_full():
        # Stage 2 is behind: what this chunk downloaded now would only wait for it on disk (a first scrape of
        # 10,000 seed-size pictures stages 12 GB). Come back later; nothing failed, so it is not an attempt.
        _chunk_retry(
            scrape_chunk_classify,
            (scrape_id, vehicle_image_ids, attempt, held + 1),
            scrape_id=scrape_id,
            wait=_held_wait(held),
        )
        return 0
    final = attempt >= settings.SPOTCHECK_SITEMAP_FETCH_RETRIES
    fetched = classify_run.scrape_chunk_fetch(
        scrape_id=scrape_id, vehicle_image_ids=vehicle_image_ids, final_attempt=final
    )
    size = max(1, settings.SPOTCHECK_CLASSIFY_CHUNK)
    for start in range(0, len(fetched.to_classify), size):
        pictures = [[image_id, rows] for image_id, rows in fetched.to_classify[start : start + size]]
        scrape_pictures_classify.apply_async((scrape_id, pictures), priority=SCRAPE_CLASSIFY_PRIORITY)
    if fetched.retry:
        wait = RETRY.countdown(attempt, retry_after=fetched.retry_after)
        _chunk_retry(scrape_chunk_classify, (scrape_id, fetched.retry, attempt + 1), scrape_id=scrape_id, wait=wait)
    return len(fetched.retry)


def _stage_two_is_full() -> bool:
    """The classify queue holds at least SPOTCHECK_CLASSIFY_AHEAD pictures waiting (counted by message,
    SPOTCHECK_CLASSIFY_CHUNK each). A broker that cannot tell never holds a chunk back."""
    waiting = broker.queue_waiting(STAGE_TWO_QUEUE)
    return waiting is not None and waiting * settings.SPOTCHECK_CLASSIFY_CHUNK >= settings.SPOTCHECK_CLASSIFY_AHEAD


def _held_wait(held: int) -> float:
    """Seconds a chunk that found stage 2 full ``held`` times before waits: SPOTCHECK_CLASSIFY_AHEAD_WAIT, longer
    (up to 4x) while it keeps finding it full, with jitter, so that the chunks of a big scrape spread out
    instead of all asking again every few seconds (50 chunks re-sent every 2 s cost the fetch worker ~4 ms per
    picture of a 10,000-picture first scrape: 10.8 ms instead of 6.5-6.7)."""
    return settings.SPOTCHECK_CLASSIFY_AHEAD_WAIT * min(held + 1, 4) * random.uniform(1.0, 1.5)


@shared_task(name="sitemaps.tasks.scrape_pictures_classify")
def scrape_pictures_classify(scrape_id: int, pictures: list[list], attempt: int = 0) -> int:
    """Stage 2 of a chunk (queue "classify", one process per core): decode, classify and store its new
    pictures, count their rows. ``pictures`` is ``[[image_id, [vehicle_image_id, ...]], ...]``. Pictures
    the backend failed transiently (throttling, 5xx) are retried like stage 1's, never sooner than the
    backend's ``Retry-After``."""
    final = attempt >= settings.SPOTCHECK_SITEMAP_FETCH_RETRIES
    outcome = classify_run.scrape_pictures_classify(
        scrape_id=scrape_id, pictures=[(image_id, list(rows)) for image_id, rows in pictures], final_attempt=final
    )
    if outcome.retry:
        _chunk_retry(
            scrape_pictures_classify,
            (scrape_id, [[image_id, rows] for image_id, rows in outcome.retry], attempt + 1),
            scrape_id=scrape_id,
            wait=RETRY.countdown(attempt, retry_after=outcome.retry_after),
            priority=SCRAPE_CLASSIFY_PRIORITY,
        )
    return outcome.counted


def _chunk_retry(task, args: tuple, *, scrape_id: int, wait: float, **options) -> None:
    """Send a chunk's retry in ``wait`` seconds; until then the stalled-run sweep leaves the run alone."""
    classify_run.scrape_retry_wait(scrape_id=scrape_id, seconds=wait)
    task.apply_async(args, countdown=wait, **options)


@shared_task(name="sitemaps.tasks.scrapes_stalled_resume")
def scrapes_stalled_resume() -> int:
    """Periodic (beat): re-dispatch the pending pictures of runs that stopped counting; chunks only touch
    pictures still pending, so a run that was merely slow is not counted twice."""
    ids = classify_run.scrapes_stalled(silent_for=timedelta(seconds=settings.SPOTCHECK_SITEMAP_STALLED_SECONDS))
    for scrape_id in ids:
        scrape_classify.delay(scrape_id)
    return len(ids)


@shared_task(name="sitemaps.tasks.fix_deliver")
def fix_deliver(outbox_id: int) -> bool:
    """Push one fix to the cache; when the cache is down the row stays undelivered for the sweep."""
    return fix_write.fix_deliver(outbox_id=outbox_id)


@shared_task(name="sitemaps.tasks.fixes_undelivered_resend")
def fixes_undelivered_resend() -> int:
    """Periodic (beat): re-send fixes the cache has not acknowledged."""
    return fix_write.fixes_undelivered_resend()
