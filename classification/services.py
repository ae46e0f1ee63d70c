"""Writes of the classification app: pictures from bytes or URLs (deduplicated by SHA-256, classified once),
reclassification, the reused-picture hook, and ground truth and manual fixes from other apps.
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from classification import cache, imaging, labels
from classification.classifiers import Classifier, ClassifierError, Description, Values, classifier_for, describe
from classification.features import PENDING_FEATURES, features_store
from classification.fetch import FetchFailed, fetch
from classification.imaging import ImageRejected
from classification.models import FetchError, GroundTruth, Image, ImageSource, ModelVersion, Prediction
from classification.values import resolve
from classification.versions import model_version_ensure_active
from classification.vocabulary import ML_ATTRIBUTES, Attribute, ImageType, is_valid

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


def image_analyze(*, data: bytes, classifier: Classifier, sha256: str | None = None) -> Analysis:
    """Decode, hash, thumbnail and classify untrusted bytes. Raises ImageRejected; a failing classifier
    yields ``values=None`` with the error kept (transient errors are retried by the caller). ``sha256`` is
    the picture's identity, given only on the calling thread: a backend may then read and write its
    per-picture cache (pool threads never touch the database; what they computed is stored by the caller)."""
    decoded = imaging.decode(data)
    if sha256:
        decoded.picture.info["sha256"] = sha256
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


def _predictions_write(*, image: Image, values: Values, version: ModelVersion, reason: str = "") -> None:
    now = timezone.now()
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
                created_at=now,
                reason=reason,
            )
        )
    Prediction.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["image", "attribute"],
        update_fields=["value", "score", "model_version", "created_at", "reason"],
    )


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


def _image_store(*, sha256: str, byte_size: int, analysis: Analysis, version: ModelVersion) -> tuple[Image, bool]:
    """Create (or complete) the picture for ``sha256``; returns it and whether predictions were written now."""
    with transaction.atomic():
        image, created = Image.objects.get_or_create(
            sha256=sha256,
            defaults={
                "width": analysis.width,
                "height": analysis.height,
                "format": analysis.format,
                "byte_size": byte_size,
                "phash": imaging.phash_to_db(analysis.phash),
            },
        )
        if analysis.description is not None:
            labels.description_record(image=image, description=analysis.description)
        if not created:
            image = Image.objects.select_for_update().get(pk=image.pk)
            if image.classified_at is not None:
                return image, False  # someone classified it meanwhile: a known picture is never re-classified
        if not image.thumbnail:
            image.thumbnail.save(_thumbnail_name(sha256), ContentFile(analysis.thumbnail), save=False)
        if image.phash is None:
            image.phash = imaging.phash_to_db(analysis.phash)
        classified = analysis.values is not None
        if classified:
            _predictions_write(image=image, values=analysis.values, version=version)
            image.classified_at = timezone.now()
        image.save()
    if analysis.pending_features is not None:
        features_store(vectors={sha256: analysis.pending_features})
    if classified:
        _cache_refresh([image.pk])
    return image, classified


def image_from_bytes(*, data: bytes, url: str = "") -> Image:
    """The picture for these bytes, classified once: a known SHA-256 is never classified again.

    Stores thumbnail, perceptual hash and predictions (each naming its ModelVersion); with ``url``, records
    the URL's ImageSource. Raises ImageRejected (``.reason`` a FetchError value) for bytes we refuse.
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
        image, _ = _image_store(sha256=sha256, byte_size=len(data), analysis=analysis, version=version)
    if url:
        _sources_record([_SourceUpdate(url=url, image_id=image.pk, status=None)])
    return image


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


def _sources_record(updates: list[_SourceUpdate], existing: dict[str, ImageSource] | None = None) -> None:
    """Upsert the sources of a batch in one statement (validators kept unless the answer gave new ones)."""
    if not updates:
        return
    if existing is None:
        existing = {s.url_hash: s for s in ImageSource.objects.filter(url_hash__in=[url_hash(u.url) for u in updates])}
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


def _pool(size: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(size, settings.SPOTCHECK_FETCH_CONCURRENCY)))


def urls_check(*, urls: list[str], classify: bool = True, deadline: float | None = None) -> dict[str, UrlCheck]:
    """Key every URL: a conditional GET with the stored validators (304: the known picture, no download),
    else the SHA-256 of the bytes decides, so a known picture is never classified again.

    New pictures are classified here when ``classify``; otherwise they are stored with their original
    bytes and marked ``pending`` for the classify queue. Downloads run concurrently in a bounded pool;
    the database is only touched from the calling thread. ``deadline`` (seconds) bounds all the downloads
    of the batch together: a URL still waiting for its turn when it passes fails with ``timeout``.
    """
    unique = list(dict.fromkeys(urls))
    checks = {u: UrlCheck(url=u) for u in unique}
    if not unique:
        return checks
    sources = {
        s.url_hash: s
        for s in ImageSource.objects.filter(url_hash__in=[url_hash(u) for u in unique]).select_related("image")
    }

    def validators(url: str) -> tuple[str, str]:
        source = sources.get(url_hash(url))
        # Only a URL whose picture we hold can be answered by a 304.
        if source is None or source.image is None or source.image.classified_at is None:
            return "", ""
        return source.etag, source.last_modified

    with _pool(len(unique)) as pool:
        ends_at = time.monotonic() + deadline if deadline is not None else None
        downloads = dict(zip(unique, pool.map(lambda u: _download(u, *validators(u), ends_at), unique), strict=True))

    updates: list[_SourceUpdate] = []
    bodies: dict[str, bytes] = {}
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
            source = sources.get(url_hash(url))
            if source is None or source.image is None or not any(validators(url)):
                # A 304 to a request without validators is a broken (or hostile) server, not a hit.
                check.error, check.status = "http_304", 304
                updates.append(_SourceUpdate(url=url, status=304, error=check.error))
                continue
            check.image_id, check.sha256 = source.image_id, source.image.sha256
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
        bodies.setdefault(d.sha256, fetched.content)

    known = {i.sha256: i for i in Image.objects.filter(sha256__in=list(bodies)).only("id", "sha256", "classified_at")}
    new_shas = [sha for sha in bodies if sha not in known or known[sha].classified_at is None]
    stored: dict[str, Image] = {sha: known[sha] for sha in bodies if sha not in new_shas}
    rejected: dict[str, ImageRejected] = {}
    classified: set[str] = set()
    failed_transiently: set[str] = set()
    if new_shas and classify:
        version = model_version_ensure_active()
        classifier = classifier_for(version)

        def analyze(sha: str):
            try:
                return image_analyze(data=bodies[sha], classifier=classifier)
            except ImageRejected as exc:
                return exc

        with _pool(len(new_shas)) as pool:
            analyses = dict(zip(new_shas, pool.map(analyze, new_shas), strict=True))
        for sha, analysis in analyses.items():
            if isinstance(analysis, ImageRejected):
                rejected[sha] = analysis
                continue
            image, now = _image_store(sha256=sha, byte_size=len(bodies[sha]), analysis=analysis, version=version)
            stored[sha] = image
            if now:
                classified.add(sha)
            elif analysis.classifier_error is not None and analysis.classifier_error.transient:
                failed_transiently.add(sha)
    elif new_shas:
        for sha in new_shas:
            try:
                stored[sha] = _image_store_pending(sha256=sha, data=bodies[sha])
            except ImageRejected as exc:
                rejected[sha] = exc

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
        check.classified = d.sha256 in classified
        check.pending = image.classified_at is None
        if d.sha256 in failed_transiently:
            check.transient = True
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
    _sources_record(updates, existing=sources)
    return checks


def _image_store_pending(*, sha256: str, data: bytes) -> Image:
    """A new picture whose classification is left to the classify queue: header checked, bytes kept."""
    width, height, fmt = imaging.probe(data)
    image, _created = Image.objects.get_or_create(
        sha256=sha256, defaults={"width": width, "height": height, "format": fmt, "byte_size": len(data)}
    )
    if image.classified_at is None:
        path = _original_path(sha256)
        if not default_storage.exists(path):
            default_storage.save(path, ContentFile(data))
    return image


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
    """Classify URLs now (synchronously, downloads in parallel), one outcome per URL in order.

    A refused or failed URL is an outcome with its ``error``; values follow the precedence advertiser
    fix → staff fix → classifier → default, read through the cache.
    """
    checks = urls_check(urls=list(urls), classify=True, deadline=deadline)
    entries = cache.entries_get(image_ids=[c.image_id for c in checks.values() if c.image_id])
    return [_outcome(checks[u], entries.get(checks[u].image_id), advertiser) for u in urls]


def bytes_classify(
    *, data: bytes, name: str, advertiser: str | None = None, record_source: bool = False
) -> ClassifyOutcome:
    """``urls_classify`` for bytes already in hand (a file): the same outcome, ``name`` in place of the URL.
    With ``record_source``, ``name`` is an address worth keeping (``s3://…``) and is recorded as a source."""
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


def image_classify(*, image_id: int) -> bool:
    """Classify a pending picture from its kept original bytes (the classify queue). False when there was
    nothing to do (already classified, or no bytes left). Raises ClassifierError when the backend failed
    transiently, so the task retries; a permanent failure leaves the picture without values."""
    image = Image.objects.get(pk=image_id)
    if image.classified_at is not None:
        return False
    path = _original_path(image.sha256)
    if default_storage.exists(path):
        with default_storage.open(path, "rb") as handle:
            data = handle.read()
    elif image.thumbnail:
        with image.thumbnail.open("rb") as handle:
            data = handle.read()
    else:
        logger.warning("picture %s has neither original nor thumbnail to classify", image_id)
        return False
    version = model_version_ensure_active()
    analysis = image_analyze(data=data, classifier=classifier_for(version), sha256=image.sha256)
    if analysis.classifier_error is not None and analysis.classifier_error.transient:
        raise analysis.classifier_error
    _image_store(sha256=image.sha256, byte_size=image.byte_size, analysis=analysis, version=version)
    if analysis.values is not None and default_storage.exists(path):
        default_storage.delete(path)
    return analysis.values is not None


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
