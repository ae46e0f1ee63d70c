"""Writes of the classification app: pictures from bytes or URLs (deduplicated by SHA-256, classified once),
reclassification, the reused-picture hook, and ground truth and manual fixes from other apps.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.utils import timezone

from classification import cache, imaging, labels
from classification.classifiers import Classifier, ClassifierError, Description, Values, classifier_for, describe
from classification.features import PENDING_FEATURES, READ_FEATURES, features_cached, features_store
from classification.fetch import FetchFailed, fetch
from classification.imaging import ImageRejected
from classification.models import FetchError, GroundTruth, Image, ImageSource, ModelVersion, Prediction
from classification.values import resolve
from classification.versions import model_version_ensure_active
from classification.vocabulary import ML_ATTRIBUTES, Attribute, ImageType, is_valid
from core.lookups import AnyOf

logger = logging.getLogger(__name__)

REASON_REUSED = "reused_across_vehicles"


def ground_truth_record(
    *,
    image: Image,
    attribute: str,
    value: str,
    source: str,
    advertiser: str = "",
    reference: str = "",
    url: str = "",
    votes: int | None = None,
    margin: int | None = None,
    user: AbstractBaseUser | None = None,
    at: datetime | None = None,
) -> GroundTruth:
    """Append one ground-truth label. Raises ValueError for a value outside the attribute's vocabulary."""
    if not is_valid(attribute, value):
        raise ValueError(f"{value!r} is not a valid {attribute}")
    if source not in GroundTruth.Source.values:
        raise ValueError(f"unknown ground-truth source {source!r}")
    if source == GroundTruth.Source.ADVERTISER_FIX and not advertiser:
        raise ValueError("an advertiser fix must name its advertiser")
    return GroundTruth.objects.create(
        image=image,
        attribute=attribute,
        value=value,
        source=source,
        advertiser=advertiser,
        reference=reference,
        url=url,
        votes=votes,
        margin=margin,
        created_by=user if user is not None and user.is_authenticated else None,
        created_at=at or timezone.now(),
    )


def ground_truth_withdraw(*, reference: str, source: str) -> int:
    """Delete the ground truth that ``reference`` produced from ``source`` (e.g. a crowd decision that rested
    on a labeler since flagged); a newer decision is recorded afresh. Answers how many rows went."""
    if not reference:
        raise ValueError("withdrawing needs the reference that produced the ground truth")
    deleted, _ = GroundTruth.objects.filter(reference=reference, source=source).delete()
    return deleted


@transaction.atomic
def fix_record(
    *,
    image: Image,
    attribute: str,
    value: str,
    user: AbstractBaseUser | None,
    advertiser: str,
    staff: bool,
    reference: str = "",
    url: str = "",
    at: datetime | None = None,
) -> GroundTruth:
    """Record a manual fix as ground truth: global when ``staff``, else scoped to ``advertiser``.

    The caller pushes it to the cache afterwards (outbox); the database row is the source of truth.
    """
    return ground_truth_record(
        image=image,
        attribute=attribute,
        value=value,
        source=GroundTruth.Source.STAFF_FIX if staff else GroundTruth.Source.ADVERTISER_FIX,
        advertiser=advertiser,
        reference=reference,
        url=url,
        user=user,
        at=at,
    )


# --- pictures ---------------------------------------------------------------------------------------------


@dataclass
class Analysis:
    """What decoding and classifying produced for new bytes (computed without touching the database)."""

    width: int
    height: int
    format: str
    phash: int
    thumbnail: bytes
    values: Values | None  # None when the classifier failed
    classifier_error: ClassifierError | None = None
    description: Description | None = None  # the backend's labels and calls, kept by labels.description_record
    # A feature vector the learned backend computed but could not store (no database off the main thread).
    pending_features: object | None = None


def image_analyze(
    *, data: bytes, classifier: Classifier, sha256: str | None = None, features_read: dict | None = None
) -> Analysis:
    """Decode, hash, thumbnail and classify untrusted bytes. Raises ImageRejected; a failing classifier
    yields ``values=None`` with the error kept (transient errors are retried by the caller). ``sha256`` is
    the picture's identity, given only on the calling thread: a backend may then read and write its
    per-picture cache (pool threads never touch the database; what they computed is stored by the caller).
    ``features_read``: the feature cache the caller read for its whole batch (SHA-256 → vector); the
    picture's vector is taken from it or computed and left for the caller to store with the batch."""
    decoded = imaging.decode(data)
    if sha256:
        decoded.picture.info["sha256"] = sha256
        if features_read is not None:
            decoded.picture.info[READ_FEATURES] = features_read.get(sha256)
    return _analysis_of(decoded, classifier)


def _analysis_of(decoded: imaging.Decoded, classifier: Classifier) -> Analysis:
    values: Values | None
    error = description = None
    try:
        description = describe(classifier, decoded.picture)
        values = description.values
    except ClassifierError as exc:
        logger.warning("classifier %s failed: %s", classifier.model_version.name, exc)
        values, error = None, exc
    return Analysis(
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        phash=imaging.phash(decoded.picture),
        thumbnail=imaging.thumbnail_bytes(decoded.picture),
        values=values,
        classifier_error=error,
        description=description,
        pending_features=decoded.picture.info.get(PENDING_FEATURES),
    )


def _prediction_rows(*, image: Image, values: Values, version: ModelVersion, at: datetime, reason: str = ""):
    rows = []
    # The ML attributes always (empty when the backend had no answer); others (banner, position) when a
    # learned head answered them.
    for attribute in (*ML_ATTRIBUTES, *(a for a in values if a not in ML_ATTRIBUTES and is_valid(a, values[a][0]))):
        value, score = values.get(attribute, (None, None))
        rows.append(
            Prediction(
                image=image,
                attribute=attribute,
                value=value or "",
                score=score if value else None,
                model_version=version,
                created_at=at,
                reason=reason,
            )
        )
    return rows


def _predictions_upsert(rows: list[Prediction]) -> None:
    if rows:
        Prediction.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["image", "attribute"],
            update_fields=["value", "score", "model_version", "created_at", "reason"],
        )


def _predictions_write(*, image: Image, values: Values, version: ModelVersion, reason: str = "") -> None:
    _predictions_upsert(_prediction_rows(image=image, values=values, version=version, at=timezone.now(), reason=reason))


def _thumbnail_name(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}.jpg"


def _original_path(sha256: str) -> str:
    return f"originals/{sha256[:2]}/{sha256}"


def _cache_refresh(image_ids: list[int]) -> None:
    try:
        cache.entries_refresh(image_ids=image_ids)
    except cache.CacheUnavailable as exc:
        # The database has the values; a stale entry is repaired by the next push or cache_rebuild.
        logger.warning("cache refresh failed for %s pictures: %s", len(image_ids), exc)


def image_from_bytes(*, data: bytes, url: str = "") -> Image:
    """The picture for these bytes, classified once: a known SHA-256 is never classified again.

    Stores thumbnail, perceptual hash and predictions (each naming its ModelVersion); with ``url``, records
    the URL's ImageSource. Raises ImageRejected (``.reason`` a FetchError value) for bytes we refuse.
    A new picture costs one lookup, the active version, one INSERT and one bulk INSERT of predictions.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    image = Image.objects.filter(sha256=sha256).first()
    if image is None or image.classified_at is None:
        version = model_version_ensure_active()
        try:
            analysis = image_analyze(data=data, classifier=classifier_for(version), sha256=sha256)
        except ImageRejected as exc:
            if url:
                _sources_record([_SourceUpdate(url=url, error=exc.reason, status=None)])
            raise
        created = _image_create(sha256=sha256, byte_size=len(data), analysis=analysis, version=version)
        if created is None:  # it exists (unclassified, or a concurrent caller inserted it first)
            image = Image.objects.get(sha256=sha256)
            if image.classified_at is None:
                _analyses_store(analyses={image: analysis}, version=version)
                image.refresh_from_db()
        else:
            image = created
    if url:
        _sources_record([_SourceUpdate(url=url, image_id=image.pk, status=None)])
    return image


def _image_create(*, sha256: str, byte_size: int, analysis: Analysis, version: ModelVersion) -> Image | None:
    """Insert a new picture with its predictions in one transaction; None when the SHA-256 is taken.

    Nobody can have read a cache entry for a picture that did not exist, so none is refreshed."""
    now = timezone.now()
    classified = analysis.values is not None
    image = Image(
        sha256=sha256,
        width=analysis.width,
        height=analysis.height,
        format=analysis.format,
        byte_size=byte_size,
        phash=imaging.phash_to_db(analysis.phash),
        classified_at=now if classified else None,
        created_at=now,
    )
    # Losing a race to a concurrent insert leaves this thumbnail file unreferenced: rare and harmless.
    image.thumbnail.save(_thumbnail_name(sha256), ContentFile(analysis.thumbnail), save=False)
    try:
        with transaction.atomic():
            image.save(force_insert=True)
            if classified:
                Prediction.objects.bulk_create(
                    _prediction_rows(image=image, values=analysis.values, version=version, at=now)
                )
            if analysis.description is not None:
                labels.description_record(image=image, description=analysis.description, at=now)
    except IntegrityError:
        return None  # the caller stores this analysis on the existing picture (labels and calls included)
    _features_keep({sha256: analysis})
    return image


def _features_keep(analyses: dict[str, Analysis]) -> None:
    """Store the feature vectors the learned backend computed but could not store itself (a cache keyed by
    SHA-256: kept whether or not the picture's predictions were written now)."""
    vectors = {sha: a.pending_features for sha, a in analyses.items() if a.pending_features is not None}
    if vectors:
        features_store(vectors=vectors)


# --- sources (URLs) ---------------------------------------------------------------------------------------


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class _SourceUpdate:
    url: str
    image_id: int | None = None
    status: int | None = None
    error: str = ""
    etag: str | None = None  # None: keep what is stored
    last_modified: str | None = None
    content_length: int | None = None


@dataclass(slots=True)
class _Known:
    """What is stored about a URL, read as plain values (a re-check of thousands builds no model objects)."""

    image_id: int | None
    etag: str
    last_modified: str
    content_length: int | None
    check_count: int
    created_at: datetime
    sha256: str | None  # of its picture
    classified: bool  # its picture is classified


def _sources_known(hashes: list[str]) -> dict[str, _Known]:
    # Whether the picture is classified, not when: a timestamp read is parsed into a datetime (two per URL
    # cost a re-check's chunk ~4 ms).
    classified = ExpressionWrapper(Q(image__classified_at__isnull=False), output_field=BooleanField())
    rows = ImageSource.objects.filter(AnyOf(F("url_hash"), hashes)).values_list(
        "url_hash",
        "image_id",
        "etag",
        "last_modified",
        "content_length",
        "check_count",
        "created_at",
        "image__sha256",
        classified,
    )
    return {row[0]: _Known(*row[1:]) for row in rows}


def _sources_rechecked(hashes: list[str]) -> None:
    """URLs answered 304 with the validators we hold: one UPDATE for the batch, nothing else changes."""
    if hashes:
        ImageSource.objects.filter(AnyOf(F("url_hash"), hashes)).update(
            last_status=304, error="", last_checked_at=timezone.now(), check_count=F("check_count") + 1
        )


def _sources_record(updates: list[_SourceUpdate], existing: dict[str, _Known] | None = None) -> None:
    """Upsert the sources of a batch in one statement (validators kept unless the answer gave new ones)."""
    if not updates:
        return
    if existing is None:
        existing = _sources_known([url_hash(u.url) for u in updates])
    now = timezone.now()
    rows = {}
    for u in updates:
        h = url_hash(u.url)
        old = existing.get(h)
        rows[h] = ImageSource(
            url=u.url,
            url_hash=h,
            image_id=u.image_id if u.image_id is not None else (old.image_id if old else None),
            etag=u.etag if u.etag is not None else (old.etag if old else ""),
            last_modified=u.last_modified if u.last_modified is not None else (old.last_modified if old else ""),
            content_length=u.content_length if u.etag is not None else (old.content_length if old else None),
            last_status=u.status,
            error=u.error,
            last_checked_at=now,
            check_count=(old.check_count if old else 0) + 1,
            created_at=old.created_at if old else now,
        )
    ImageSource.objects.bulk_create(
        list(rows.values()),
        update_conflicts=True,
        unique_fields=["url_hash"],
        update_fields=[
            "image",
            "etag",
            "last_modified",
            "content_length",
            "last_status",
            "error",
            "last_checked_at",
            "check_count",
        ],
    )


# --- URLs -------------------------------------------------------------------------------------------------


@dataclass
class UrlCheck:
    """What checking one URL found: the picture (if any), and whether it took a classification."""

    url: str
    image_id: int | None = None
    sha256: str | None = None
    status: int | None = None
    error: str | None = None
    transient: bool = False  # the error may go away (timeouts, 5xx, a failing classifier backend)
    retry_after: float | None = None  # seconds the server asked for before another try (Retry-After)
    classified: bool = False  # the classifier ran for this URL in this call
    pending: bool = False  # a new picture stored for the classify queue, not classified yet


@dataclass
class _Download:
    fetched: object = None  # Fetched | None
    failure: FetchFailed | None = None
    sha256: str | None = None


def _download(url: str, etag: str, last_modified: str, ends_at: float | None = None) -> _Download:
    deadline = None
    if ends_at is not None:
        deadline = min(settings.SPOTCHECK_FETCH_DEADLINE, ends_at - time.monotonic())
        if deadline <= 0:
            return _Download(failure=FetchFailed(FetchError.TIMEOUT, "the batch ran out of time"))
    try:
        fetched = fetch(url, etag=etag, last_modified=last_modified, deadline=deadline)
    except FetchFailed as exc:
        return _Download(failure=exc)
    sha = hashlib.sha256(fetched.content).hexdigest() if fetched.content is not None else None
    return _Download(fetched=fetched, sha256=sha)


_pools = threading.local()


def _pool() -> ThreadPoolExecutor:
    """The calling thread's download pool, kept between batches (starting threads per batch cost more than
    a batch of 304s); ``SPOTCHECK_FETCH_CONCURRENCY`` downloads at most at a time per calling thread."""
    size = max(1, settings.SPOTCHECK_FETCH_CONCURRENCY)
    pool = getattr(_pools, "pool", None)
    if pool is None or pool._max_workers != size:  # the executor's own size, read only
        if pool is not None:
            pool.shutdown(wait=False)
        pool = _pools.pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="spotcheck-download")
    return pool


# A batch starts with this many downloads at once and grows towards SPOTCHECK_FETCH_CONCURRENCY only while
# answers are slow: every download that took longer than _SLOW_ANSWER starts one more thread. Threads add
# no speed when a server answers at once (a re-check's 304s from a nearby CDN, or loopback) and cost CPU
# (GIL hand-offs): 16 threads spent 356 µs of CPU per loopback 304 against 283 µs with 2, for no more
# answers per second. A CDN answering in 20-100 ms has all of them busy after three round trips.
_FIRST_THREADS = 2
_SLOW_ANSWER = 0.005  # seconds
_WAITING_POLL = 0.02  # seconds


# The bodies a batch's downloads hand over wait for the calling thread, which stages them (storage, then the
# database) in batches of _STAGE_BATCH_BYTES while the downloads go on; a download finding _STAGE_AHEAD_BYTES
# waiting waits too. A chunk then holds at most that plus the downloads in flight (each under the byte cap),
# instead of every body of its 200 URLs at once (200 x the 20 MB cap: 4 GB in one fetch process). A chunk of
# seed-size pictures (~250 MB) never waits. Batches of 16 MB with 64 MB ahead bounded a process at a quarter of
# the memory but cost the classify processes ~7 ms of CPU per picture more on a 2,000-picture first scrape
# (bench/pipeline.py: 50.0 against 43.4 ms; 47.9 with these sizes), most likely because bodies freed sooner
# hand pages back to the kernel that other processes then fault in again (on the VM it was measured on).
_STAGE_BATCH_BYTES = 64 * 2**20
_STAGE_AHEAD_BYTES = 256 * 2**20


class _Staging:
    """Downloaded bodies on their way from the download threads to ``_images_stage`` on the calling thread,
    one per SHA-256; ``stored`` and ``rejected`` collect what staging made of them."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._waiting: dict[str, bytes] = {}
        self._waiting_bytes = 0
        self._seen: set[str] = set()
        self.closed = False  # the calling thread gave up (an error): hand nothing over, download nothing more
        self.stored: dict[str, Image] = {}
        self.rejected: dict[str, ImageRejected] = {}

    def hand_over(self, sha256: str, content: bytes) -> None:
        """On a download thread: queue the body for staging (once per SHA-256), waiting while the calling
        thread has _STAGE_AHEAD_BYTES to stage already."""
        with self._ready:
            if sha256 in self._seen:
                return
            self._seen.add(sha256)
            while self._waiting and self._waiting_bytes >= _STAGE_AHEAD_BYTES and not self.closed:
                self._ready.wait()
            if not self.closed:
                self._waiting[sha256] = content
                self._waiting_bytes += len(content)

    def stage(self, *, final: bool = False) -> None:
        """On the calling thread: stage what waits, once there is a batch of it (or all of it, ``final``)."""
        with self._ready:
            if not self._waiting or (self._waiting_bytes < _STAGE_BATCH_BYTES and not final):
                return
            batch, self._waiting, self._waiting_bytes = self._waiting, {}, 0
        try:
            stored, rejected = _images_stage(batch)
        finally:
            del batch  # the bodies go before the waiting downloads hand over more
            with self._ready:
                self._ready.notify_all()
        self.stored.update(stored)
        self.rejected.update(rejected)

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._waiting, self._waiting_bytes = {}, 0
            self._ready.notify_all()


def _each_in_pool(items: list, work, *, while_waiting: Callable[[], None] | None = None) -> list:
    """``[work(item) for item in items]``, run by at most SPOTCHECK_FETCH_CONCURRENCY threads of the calling
    thread's pool, each taking the next item as soon as it is done with one: one task per thread rather than
    one future per item (the futures, their queue and the wake-ups they cost showed on a batch of 304s).
    ``_FIRST_THREADS`` start; each item that took ``_SLOW_ANSWER`` or longer starts another while under the
    limit. ``while_waiting``: called on the calling thread every ``_WAITING_POLL`` seconds until the threads
    are done (the calling thread's share of the work, e.g. the database). An exception raised by ``work`` is
    raised here once every thread has stopped."""
    results: list = [None] * len(items)
    indices = iter(range(len(items)))
    lock = threading.Lock()
    limit = min(len(items), max(1, settings.SPOTCHECK_FETCH_CONCURRENCY))
    pool = _pool()
    threads: list = []

    def drain() -> None:
        while True:
            with lock:
                i = next(indices, None)
            if i is None:
                return
            started = time.monotonic()
            results[i] = work(items[i])
            if len(threads) < limit and time.monotonic() - started >= _SLOW_ANSWER:
                with lock:
                    if len(threads) < limit:
                        threads.append(pool.submit(drain))

    with lock:
        threads.extend(pool.submit(drain) for _ in range(min(limit, _FIRST_THREADS)))
    waited = 0
    while True:  # only a running thread starts another: once all that were started have stopped, none will
        with lock:
            started_since = threads[waited:]
        if not started_since:
            break
        if while_waiting is None:
            wait(started_since)
        else:
            while wait(started_since, timeout=_WAITING_POLL).not_done:
                while_waiting()
        waited += len(started_since)
    for thread in threads:
        thread.result()
    return results


def urls_check(
    *,
    urls: list[str],
    deadline: float | None = None,
    record_with: Callable[[dict[str, UrlCheck]], None] | None = None,
) -> dict[str, UrlCheck]:
    """Stage 1 of the pipeline (the fetch queue; I/O only): key every URL, never decode.

    A conditional GET with the stored validators (304: the known picture, no download), else the SHA-256
    of the bytes decides: a known, classified picture is a hit; new bytes are header-checked (format and
    pixel count, no decoding), staged in default storage under their SHA-256 and their picture row created
    unclassified (``pending``) for stage 2, ``images_classify``. Downloads run concurrently in a bounded
    pool; the database is only touched from the calling thread. ``deadline`` (seconds) bounds all the
    downloads of the batch together: a URL still waiting for its turn when it passes fails with ``timeout``.
    ``record_with(checks)``: the caller's own writes about these checks, made in the transaction that records
    the sources, so that both cost one commit (a re-check chunk waited for two disk flushes instead of one).
    """
    unique = list(dict.fromkeys(urls))
    checks = {u: UrlCheck(url=u) for u in unique}
    if not unique:
        return checks
    hashes = {u: url_hash(u) for u in unique}
    sources = _sources_known(list(hashes.values()))

    def validators(url: str) -> tuple[str, str]:
        source = sources.get(hashes[url])
        # Only a URL whose picture we hold can be answered by a 304.
        if source is None or source.image_id is None or not source.classified:
            return "", ""
        return source.etag, source.last_modified

    ends_at = time.monotonic() + deadline if deadline is not None else None
    staging = _Staging()

    def download(url: str) -> _Download:
        if staging.closed:
            return _Download(failure=FetchFailed(FetchError.CONNECTION, "the batch was abandoned"))
        d = _download(url, *validators(url), ends_at)
        if d.fetched is not None and d.fetched.content is not None:
            staging.hand_over(d.sha256, d.fetched.content)
            d.fetched = replace(d.fetched, content=None)  # the staging's reference is the only one left
        return d

    try:
        downloads = dict(zip(unique, _each_in_pool(unique, download, while_waiting=staging.stage), strict=True))
        staging.stage(final=True)
    finally:
        staging.close()

    updates: list[_SourceUpdate] = []
    rechecked: list[str] = []
    for url, d in downloads.items():
        check = checks[url]
        if d.failure is not None:
            check.error, check.transient = d.failure.reason, d.failure.transient
            check.retry_after = d.failure.retry_after
            check.status = int(d.failure.reason[5:]) if d.failure.reason.startswith("http_") else None
            updates.append(_SourceUpdate(url=url, status=check.status, error=check.error))
            continue
        fetched = d.fetched
        check.status = fetched.status
        if fetched.not_modified:
            source = sources.get(hashes[url])
            if source is None or source.image_id is None or not any(validators(url)):
                # A 304 to a request without validators is a broken (or hostile) server, not a hit.
                check.error, check.status = "http_304", 304
                updates.append(_SourceUpdate(url=url, status=304, error=check.error))
                continue
            check.image_id, check.sha256 = source.image_id, source.sha256
            if (fetched.etag or source.etag, fetched.last_modified or source.last_modified) == validators(url):
                rechecked.append(hashes[url])
                continue
            updates.append(
                _SourceUpdate(
                    url=url,
                    image_id=source.image_id,
                    status=304,
                    etag=fetched.etag or source.etag,
                    last_modified=fetched.last_modified or source.last_modified,
                    content_length=source.content_length,
                )
            )
            continue
        check.sha256 = d.sha256

    stored, rejected = staging.stored, staging.rejected
    for url, d in downloads.items():
        check = checks[url]
        if d.failure is not None or d.fetched.not_modified:
            continue
        fetched = d.fetched
        if d.sha256 in rejected:
            check.error = rejected[d.sha256].reason
            updates.append(_SourceUpdate(url=url, status=fetched.status, error=check.error, etag="", last_modified=""))
            continue
        image = stored[d.sha256]
        check.image_id = image.pk
        check.pending = image.classified_at is None
        updates.append(
            _SourceUpdate(
                url=url,
                image_id=image.pk,
                status=fetched.status,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                content_length=fetched.content_length,
            )
        )
    with transaction.atomic() if record_with is not None else contextlib.nullcontext():
        _sources_rechecked(rechecked)
        _sources_record(updates, existing=sources)
        if record_with is not None:
            record_with(checks)
    return checks


def checks_retry_after(*, checks: Iterable[UrlCheck]) -> float | None:
    """The longest ``Retry-After`` (seconds) a server sent among the checks that failed transiently: a retry
    of them waits at least that long (core.retry). None when no server asked for a wait."""
    return max((c.retry_after for c in checks if c.error and c.transient and c.retry_after is not None), default=None)


class _Staged(ContentFile):
    """Downloaded bytes for default storage, handed over in one piece: FileSystemStorage writes a file's
    ``chunks()``, 64 KiB copies and writes by default (19 of each for a seed-size picture)."""

    def chunks(self, chunk_size: int | None = None):
        yield self.file.getvalue()  # the bytes given, not a copy (BytesIO shares them until written to)


def _images_stage(bodies: dict[str, bytes]) -> tuple[dict[str, Image], dict[str, ImageRejected]]:
    """The pictures of downloaded bytes by SHA-256: known ones as they are; new ones header-checked, their
    bytes staged in default storage for the classify queue, their rows created unclassified (in bulk)."""
    if not bodies:
        return {}, {}
    fields = ("id", "sha256", "classified_at")
    stored = {i.sha256: i for i in Image.objects.filter(sha256__in=list(bodies)).only(*fields)}
    rejected: dict[str, ImageRejected] = {}
    new: list[Image] = []
    for sha, data in bodies.items():
        if sha in stored and stored[sha].classified_at is not None:
            continue
        if sha not in stored:
            try:
                width, height, fmt = imaging.probe(data)
            except ImageRejected as exc:
                rejected[sha] = exc
                continue
            new.append(Image(sha256=sha, width=width, height=height, format=fmt, byte_size=len(data)))
        path = _original_path(sha)
        if not default_storage.exists(path):
            default_storage.save(path, _Staged(data))
    if new:
        Image.objects.bulk_create(new, ignore_conflicts=True)  # a concurrent chunk may have created some
        stored.update({i.sha256: i for i in Image.objects.filter(sha256__in=[i.sha256 for i in new]).only(*fields)})
    return stored, rejected


@dataclass
class Classified:
    """What stage 2 did with one picture."""

    image_id: int
    status: str  # "classified" now, "known" (classified before), "no_values" (the backend failed),
    # "rejected" (the bytes do not decode: the picture is gone, its URLs carry ``error``), "missing" (no
    # row or no staged bytes: left for the next fetch of its URLs)
    error: str | None = None
    transient: bool = False  # the backend failed transiently (worth a retry)
    retry_after: float | None = None  # seconds a throttling backend asked us to wait before that retry

    @property
    def finished(self) -> bool:
        """The picture has its outcome (values or none); it is not waiting for anything."""
        return self.status in {"classified", "known", "no_values"}


def images_classify(*, image_ids: list[int]) -> dict[int, Classified]:
    """Stage 2 of the pipeline (the classify queue; CPU): decode, classify, thumbnail and store pictures
    staged by ``urls_check``, then drop their staged bytes. A picture classified meanwhile is left alone
    (a known picture is never classified again); bytes that do not decode remove the picture and record
    the reason on its URLs. The database writes of the batch are one transaction."""
    ids = list(dict.fromkeys(image_ids))
    images = {i.pk: i for i in Image.objects.filter(pk__in=ids)}
    results: dict[int, Classified] = {}
    analyses: dict[int, Analysis] = {}
    rejected: dict[int, str] = {}
    version = None
    # The feature cache of the whole batch in one query (a picture retried after a failing backend has its
    # vector already); the vectors computed now are stored together by _analyses_store.
    features_read = features_cached(sha256s=[i.sha256 for i in images.values() if i.classified_at is None])
    for pk in ids:
        image = images.get(pk)
        if image is None:
            results[pk] = Classified(image_id=pk, status="missing")
            continue
        if image.classified_at is not None:
            results[pk] = Classified(image_id=pk, status="known")
            continue
        data = _stored_bytes(image)
        if data is None:
            results[pk] = Classified(image_id=pk, status="missing")
            continue
        if version is None:
            version = model_version_ensure_active()
            classifier = classifier_for(version)
        try:
            # On this thread, so the learned backend reads and fills its per-picture feature cache.
            analyses[pk] = image_analyze(
                data=data, classifier=classifier, sha256=image.sha256, features_read=features_read
            )
        except ImageRejected as exc:
            rejected[pk] = exc.reason
    if analyses:
        written = _analyses_store(analyses={images[pk]: a for pk, a in analyses.items()}, version=version)
        for pk, analysis in analyses.items():
            if pk not in written:
                results[pk] = Classified(image_id=pk, status="known")
            elif analysis.values is not None:
                results[pk] = Classified(image_id=pk, status="classified")
            else:
                error = analysis.classifier_error
                results[pk] = Classified(
                    image_id=pk,
                    status="no_values",
                    transient=bool(error and error.transient),
                    retry_after=error.retry_after if error else None,
                )
    if rejected:
        _images_reject(rejected={images[pk]: reason for pk, reason in rejected.items()})
        results.update({pk: Classified(image_id=pk, status="rejected", error=r) for pk, r in rejected.items()})
    return {pk: results[pk] for pk in ids}


def _stored_bytes(image: Image) -> bytes | None:
    path = _original_path(image.sha256)
    if default_storage.exists(path):
        with default_storage.open(path, "rb") as handle:
            return handle.read()
    if image.thumbnail:
        with image.thumbnail.open("rb") as handle:
            return handle.read()
    return None


def _analyses_store(*, analyses: dict[Image, Analysis], version: ModelVersion) -> set[int]:
    """Store the analyses of unclassified pictures in one transaction: thumbnails, perceptual hashes,
    predictions in bulk; returns the ids written (a picture classified meanwhile is skipped). Staged
    bytes of the pictures now classified are dropped and their cache entries refreshed afterwards."""
    by_id = {image.pk: (image, analysis) for image, analysis in analyses.items()}
    now = timezone.now()
    with transaction.atomic():
        open_ids = set(
            Image.objects.select_for_update()
            .filter(pk__in=list(by_id), classified_at__isnull=True)
            .values_list("pk", flat=True)
        )
        # The backend calls were made (and paid for) whether or not the picture was classified meanwhile.
        labels.descriptions_record(
            described=[(image, a.description) for image, a in by_id.values() if a.description is not None], at=now
        )
        changed, predictions = [], []
        for pk in open_ids:
            image, analysis = by_id[pk]
            if not image.thumbnail:
                image.thumbnail.save(_thumbnail_name(image.sha256), ContentFile(analysis.thumbnail), save=False)
            if image.phash is None:
                image.phash = imaging.phash_to_db(analysis.phash)
            if analysis.values is not None:
                predictions += _prediction_rows(image=image, values=analysis.values, version=version, at=now)
                image.classified_at = now
            changed.append(image)
        Image.objects.bulk_update(changed, ["thumbnail", "phash", "classified_at"])
        _predictions_upsert(predictions)
    _features_keep({image.sha256: analysis for image, analysis in by_id.values()})
    classified = [image.pk for image in changed if image.classified_at is not None]
    for pk in classified:
        default_storage.delete(_original_path(by_id[pk][0].sha256))  # a missing file is no error
    if classified:
        _cache_refresh(classified)
    return open_ids


def _images_reject(*, rejected: dict[Image, str]) -> None:
    """Bytes that passed the header check but do not decode: the picture goes (as if never stored), its
    URLs keep the reason and lose their validators, its staged bytes are dropped. Only a picture that was
    never decoded goes (no thumbnail: nothing can have shown, fixed or labelled it)."""
    with transaction.atomic():
        for image, reason in rejected.items():
            ImageSource.objects.filter(image_id=image.pk).update(image=None, error=reason, etag="", last_modified="")
        Image.objects.filter(pk__in=[i.pk for i in rejected], classified_at__isnull=True, thumbnail="").delete()
    for image in rejected:
        path = _original_path(image.sha256)
        if default_storage.exists(path):
            default_storage.delete(path)


@dataclass
class ClassifyOutcome:
    """One URL's answer, as the API and the ``classify`` command print it."""

    url: str
    image_id: int | None
    sha256: str | None
    values: dict[str, dict] = field(default_factory=dict)  # attribute → {"value", "score", "source"}
    source: str = "default"  # of the image type: "ml" | "fix" | "default"
    cached: bool = False  # answered without running the classifier
    model: str | None = None
    error: str | None = None

    def as_result(self) -> dict:
        return {
            "url": self.url,
            "sha256": self.sha256,
            "image_type": self.values.get(Attribute.IMAGE_TYPE, {}).get("value"),
            "color": self.values.get(Attribute.COLOR, {}).get("value"),
            **{a: v["value"] for a, v in self.values.items() if a not in ML_ATTRIBUTES},
            "scores": {a: v["score"] for a, v in self.values.items()},
            "source": self.source,
            "cached": self.cached,
            "model": self.model,
            "error": self.error,
        }


def _collapse(source: str) -> str:
    return "fix" if source in (GroundTruth.Source.STAFF_FIX, GroundTruth.Source.ADVERTISER_FIX) else source


def _outcome(check: UrlCheck, entry: dict | None, advertiser: str | None) -> ClassifyOutcome:
    if entry is not None:
        # image_type and colour always; banner, position… when a learned head predicted them
        extra = tuple(a for a in entry.get("ml", {}) if a not in ML_ATTRIBUTES)
        resolved = cache.entry_values(entry, advertiser=advertiser, attributes=(*ML_ATTRIBUTES, *extra))
        model = cache.entry_model(entry)
    else:
        resolved = {a: resolve(attribute=a, ml_value=None) for a in ML_ATTRIBUTES}
        model = None
    values = {
        str(a): {
            "value": None if r.value is None else str(r.value),
            "score": r.ml_score if r.source == "ml" else None,
            "source": str(r.source),
        }
        for a, r in resolved.items()
    }
    return ClassifyOutcome(
        url=check.url,
        image_id=check.image_id,
        sha256=check.sha256,
        values=values,
        source=_collapse(resolved[Attribute.IMAGE_TYPE].source),
        cached=check.image_id is not None and not check.classified,
        model=model,
        error=check.error,
    )


def urls_classify(
    *, urls: list[str], advertiser: str | None = None, deadline: float | None = None
) -> list[ClassifyOutcome]:
    """Both stages of the pipeline in this process (the ``classify`` command, benchmarks), one outcome per
    URL in order; the API runs stage 2 on the classify queue instead (``classification.dispatch``).

    A refused or failed URL is an outcome with its ``error``; values follow the precedence advertiser
    fix → staff fix → classifier → default, read through the cache.
    """
    checks = urls_check(urls=list(urls), deadline=deadline)
    pending = [c.image_id for c in checks.values() if c.pending]
    checks_complete(checks=checks, results=images_classify(image_ids=pending) if pending else {})
    return urls_outcomes(urls=urls, checks=checks, advertiser=advertiser)


def checks_complete(*, checks: dict[str, UrlCheck], results: dict[int, Classified]) -> None:
    """Fold what stage 2 did into the stage 1 checks (a picture without a result stays ``pending``)."""
    for check in checks.values():
        result = results.get(check.image_id) if check.pending else None
        if result is None:
            continue
        if result.status == "rejected":
            check.image_id, check.error, check.pending = None, result.error, False
        elif result.finished:
            check.pending = False
            check.classified = result.status == "classified"
            check.transient = result.transient


def urls_outcomes(*, urls: list[str], checks: dict[str, UrlCheck], advertiser: str | None) -> list[ClassifyOutcome]:
    """One outcome per URL in order, values read through the cache."""
    entries = cache.entries_get(image_ids=[c.image_id for c in checks.values() if c.image_id])
    return [_outcome(checks[u], entries.get(checks[u].image_id), advertiser) for u in urls]


def bytes_check(*, data: bytes, name: str, record_source: bool = False) -> UrlCheck:
    """Stage 1 for bytes already in hand (an upload, an object of our bucket): ``urls_check`` without the
    download, ``name`` in place of the URL. A known, classified SHA-256 is a hit; new bytes are header-checked
    (never decoded), staged and their picture row created unclassified (``pending``); refused bytes answer
    their ``error``. With ``record_source``, ``name`` (``s3://…``) is recorded as a source, as
    ``bytes_classify`` does."""
    sha256 = hashlib.sha256(data).hexdigest()
    check = UrlCheck(url=name, sha256=sha256)
    stored, rejected = _images_stage({sha256: data})
    if sha256 in rejected:
        check.error = rejected[sha256].reason
        update = _SourceUpdate(url=name, error=check.error, status=None)
    else:
        image = stored[sha256]
        check.image_id, check.pending = image.pk, image.classified_at is None
        update = _SourceUpdate(url=name, image_id=image.pk, status=None)
    if record_source:  # before stage 2, which moves a refusal of the bytes onto the picture's sources
        _sources_record([update])
    return check


def bytes_classify(
    *, data: bytes, name: str, advertiser: str | None = None, record_source: bool = False
) -> ClassifyOutcome:
    """``urls_classify`` for bytes already in hand (a file): the same outcome, ``name`` in place of the URL,
    both stages in this process (commands, the bucket task already on the classify queue; the API sends
    stage 2 to the queue: ``dispatch.bytes_classify_queued``). With ``record_source``, ``name`` is an address
    worth keeping (``s3://…``) and is recorded as a source."""
    sha256 = hashlib.sha256(data).hexdigest()
    known = Image.objects.filter(sha256=sha256, classified_at__isnull=False).exists()
    check = UrlCheck(url=name, sha256=sha256)
    try:
        image = image_from_bytes(data=data, url=name if record_source else "")
    except ImageRejected as exc:
        check.error = exc.reason
        return _outcome(check, None, advertiser)
    check.image_id, check.classified = image.pk, not known and image.classified_at is not None
    entry = cache.entries_get(image_ids=[image.pk])[image.pk]
    return _outcome(check, entry, advertiser)


def image_reclassify(*, image_id: int, model_version_id: int | None = None) -> bool:
    """Re-run a version (default: the active one) on a stored picture whose predictions came from another
    version. Returns whether predictions changed hands. Never touches GroundTruth: fixes keep winning.
    Raises ClassifierError when the backend fails (the task retries transient ones)."""
    version = ModelVersion.objects.get(pk=model_version_id) if model_version_id else model_version_ensure_active()
    image = Image.objects.get(pk=image_id)
    made_by = set(Prediction.objects.filter(image=image).values_list("model_version_id", flat=True))
    if made_by == {version.pk}:
        return False
    if image.thumbnail:
        with image.thumbnail.open("rb") as handle:
            data = handle.read()
    elif default_storage.exists(_original_path(image.sha256)):
        with default_storage.open(_original_path(image.sha256), "rb") as handle:
            data = handle.read()
    else:
        logger.warning("picture %s has no stored bytes to reclassify", image_id)
        return False
    decoded = imaging.decode(data)
    decoded.picture.info["sha256"] = image.sha256  # decoded from the thumbnail, but it is this picture
    description = describe(classifier_for(version), decoded.picture)
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image_id)
        _predictions_write(image=image, values=description.values, version=version)
        labels.description_record(image=image, description=description)
        image.classified_at = timezone.now()
        image.save(update_fields=["classified_at"])
    _cache_refresh([image_id])
    return True


def images_reused_placeholder_apply(*, image_ids: list[int]) -> int:
    """The reuse hook: pictures shown for many vehicles of one advertiser are Placeholders (seed 002).

    Their image type becomes Placeholder and their colour none, with the reason recorded on the
    predictions and the cache updated. Returns how many pictures changed.
    """
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        return 0
    current = {
        (p.image_id, p.attribute): p
        for p in Prediction.objects.filter(image_id__in=ids, attribute__in=ML_ATTRIBUTES).select_related(
            "model_version"
        )
    }

    def is_placeholder(image_id: int) -> bool:
        image_type, color = current.get((image_id, Attribute.IMAGE_TYPE)), current.get((image_id, Attribute.COLOR))
        return image_type is not None and image_type.value == ImageType.PLACEHOLDER and not (color and color.value)

    changed = [i for i in ids if not is_placeholder(i)]
    if not changed:
        return 0
    default_version = model_version_ensure_active()
    with transaction.atomic():
        for image in Image.objects.select_for_update().filter(pk__in=changed):
            previous = current.get((image.pk, Attribute.IMAGE_TYPE))
            version = previous.model_version if previous is not None else default_version
            _predictions_write(
                image=image,
                values={Attribute.IMAGE_TYPE: (ImageType.PLACEHOLDER, 1.0), Attribute.COLOR: (None, None)},
                version=version,
                reason=REASON_REUSED,
            )
    _cache_refresh(changed)
    return len(changed)
