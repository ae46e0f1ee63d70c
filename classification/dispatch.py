"""Requests for the pipeline's queues. ``urls_enqueue``: URLs announced from outside (Event Grid blobs) go
to stage 1 on the fetch queue once the transaction commits. ``urls_classify_queued``: the classify API's
batches through the pipeline: stage 1 (download and key) in the request, stage 2
(decode, classify, thumbnail, store) on the classify queue, one task per new picture, waited for.
``bytes_classify_queued`` and ``object_classify_queued``: the classify API's uploads and bucket keys the same
way: stage 1 (hash, header check, staging; no download) in the request, stage 2 on the classify queue, so
no web process decodes uploaded bytes.

Stage 1 runs in the request rather than on the fetch queue so that an interactive batch never waits behind
a scrape's downloads; its stage 2 tasks go ahead of the scrapes' (those are sent at the lowest priority).
The wait reads the database: a picture is finished once classified, stored without values, or gone
(refused bytes). What is not finished by the deadline answers ``timeout`` and is still classified on the
queue, so the next request for it is a hit. Likewise a URL whose download failed transiently (a timeout,
429, 5xx) answers its error and is fetched again on the fetch queue by the one retry policy, no sooner
than the server's ``Retry-After``.
"""

from __future__ import annotations

import time

from classification import bucket, services
from classification.models import Image, ImageSource
from classification.services import Classified, ClassifyOutcome, UrlCheck, url_hash
from classification.tasks.classify import image_classify, urls_fetch
from core.outbox import enqueue_now, enqueue_on_commit
from core.retry import RETRY

POLL_SECONDS = 0.05


def urls_enqueue(*, urls: list[str]) -> None:
    """Classify URLs in the background (stage 1 on the fetch queue, then stage 2) once the current
    transaction commits (through the outbox: a broker outage delays the work, never loses it)."""
    unique = list(dict.fromkeys(urls))
    if unique:
        enqueue_on_commit(urls_fetch, unique)


def urls_classify_queued(*, urls: list[str], advertiser: str | None = None, deadline: float) -> list[ClassifyOutcome]:
    """``services.urls_classify`` with stage 2 on the classify queue; ``deadline`` (seconds) bounds the
    downloads and the wait together."""
    ends_at = time.monotonic() + deadline
    checks = services.urls_check(urls=list(urls), deadline=deadline)
    transient = [c.url for c in checks.values() if c.error and c.transient]
    if transient:
        wait = RETRY.countdown(0, retry_after=services.checks_retry_after(checks=checks.values()))
        enqueue_on_commit(urls_fetch, transient, countdown=wait)
    _pending_classify(checks=checks, ends_at=ends_at, sourced=True)
    return services.urls_outcomes(urls=urls, checks=checks, advertiser=advertiser)


def bytes_classify_queued(
    *, data: bytes, name: str, advertiser: str | None = None, record_source: bool = False, deadline: float
) -> ClassifyOutcome:
    """``services.bytes_classify`` with stage 2 on the classify queue: the bytes are header-checked and
    staged here, never decoded; ``deadline`` (seconds) bounds the wait."""
    ends_at = time.monotonic() + deadline
    checks = {name: services.bytes_check(data=data, name=name, record_source=record_source)}
    _pending_classify(checks=checks, ends_at=ends_at, sourced=record_source)
    return services.urls_outcomes(urls=[name], checks=checks, advertiser=advertiser)[0]


def object_classify_queued(*, uri: str, advertiser: str | None = None, deadline: float) -> ClassifyOutcome:
    """``bucket.object_classify`` with stage 2 on the classify queue; ``deadline`` (seconds) bounds the read
    of the object and the wait together. Raises ``bucket.BucketRefused``."""
    ends_at = time.monotonic() + deadline
    ref = bucket.object_ref(uri)
    data = bucket.object_read(ref)
    return bytes_classify_queued(
        data=data, name=ref.uri, advertiser=advertiser, record_source=True, deadline=ends_at - time.monotonic()
    )


def _pending_classify(*, checks: dict[str, UrlCheck], ends_at: float, sourced: bool) -> None:
    """Send the checks' new pictures to stage 2 (one ``image_classify`` each) and wait for them until
    ``ends_at``; fold what stage 2 did into the checks. A picture stage 2 refused answers the reason it
    recorded on its sources (``sourced``: the checks' addresses were recorded as sources; else
    ``bad_image``); one not finished by then answers ``timeout`` and is still classified on the queue."""
    pending = sorted({c.image_id for c in checks.values() if c.pending})
    for image_id in pending:  # with the broker down: parked in the outbox, the answer is "timeout", not 500
        enqueue_now(image_classify, image_id)
    results = _finished_wait(image_ids=pending, ends_at=ends_at) if pending else {}
    gone = {pk for pk, r in results.items() if r.status == "rejected"}
    if gone and sourced:
        # Stage 2 refused these bytes and recorded why on their URLs (which no longer name the picture).
        by_hash = {url_hash(c.url): c.image_id for c in checks.values() if c.image_id in gone}
        for h, error in ImageSource.objects.filter(url_hash__in=list(by_hash)).values_list("url_hash", "error"):
            results[by_hash[h]].error = error or results[by_hash[h]].error
    services.checks_complete(checks=checks, results=results)
    for check in checks.values():
        if check.pending:
            check.error, check.transient = "timeout", True


def _finished_wait(*, image_ids: list[int], ends_at: float) -> dict[int, Classified]:
    """Poll the pictures until each is finished or gone, or the time is up (one query per poll)."""
    results: dict[int, Classified] = {}
    waiting = set(image_ids)
    while waiting:
        rows = {
            pk: (classified_at, thumbnail)
            for pk, classified_at, thumbnail in Image.objects.filter(pk__in=waiting).values_list(
                "pk", "classified_at", "thumbnail"
            )
        }
        for pk in list(waiting):
            if pk not in rows:
                results[pk] = Classified(image_id=pk, status="rejected", error="bad_image")
            elif rows[pk][0] is not None:
                results[pk] = Classified(image_id=pk, status="classified")
            elif rows[pk][1]:
                results[pk] = Classified(image_id=pk, status="no_values")
            else:
                continue
            waiting.discard(pk)
        if not waiting or time.monotonic() + POLL_SECONDS > ends_at:
            break
        time.sleep(POLL_SECONDS)
    return results
