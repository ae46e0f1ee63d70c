"""Dataset export: an attribute's ground truth as a folder-per-class zip (Keras / torchvision layout) or a
manifest alone, split train/test deterministically in groups that near-duplicates never straddle.

Definitions the code below holds to:

* **Voices.** Among a picture's ground truths for the attribute (selected sources, recorded up to the
  export's snapshot), each of consensus, adjudication and staff fix is one voice, and each advertiser's fixes
  are one voice per advertiser; a voice says what its *latest* row says (a newer staff fix replaces an older).
* **Conflicting.** The voices name more than one value. Left out unless ``include_conflicting``; then the label
  is taken by precedence adjudication → staff fix → consensus → advertiser fix (advertisers' criteria differ
  from ours, seed 002).
* **Since.** With a ``since`` time (or "since the last export": the snapshot of the attribute's last done
  export), only pictures with a ground truth recorded after it are exported; their label still weighs all
  their voices up to the snapshot.
* **Groups.** Pictures whose 64-bit perceptual hashes differ in at most ``phash_threshold`` bits are joined
  (union-find; candidates found through four 16-bit bands), and with ``group_by_advertiser`` so are pictures
  shown by the same advertiser. A group goes wholly to train or test by a keyed hash of its smallest SHA-256
  and the seed — never Python's ``random`` or ``hash()``.
* **Manifest.** Sorted by SHA-256, no timestamps: same parameters and data give the same bytes.

Memory: ground truth is streamed with ``.iterator()``; per kept picture only its hash, perceptual hash,
class and advertisers stay in memory (a few hundred bytes); records and the zip go through temporary files.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import secrets
import tempfile
import time
import zipfile
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from itertools import combinations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models import Min, Q
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from classification.collections import collection_get
from classification.models import DatasetExport, GroundTruth, ImageSource, JobStatus
from classification.vocabulary import Attribute, choices_for
from core.outbox import enqueue_on_commit

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("sha256", "split", "label", "source", "votes", "margin", "advertiser", "url", "width", "height")
SOURCE_PRECEDENCE = (
    GroundTruth.Source.ADJUDICATION,
    GroundTruth.Source.STAFF_FIX,
    GroundTruth.Source.CONSENSUS,
    GroundTruth.Source.ADVERTISER_FIX,
)
DEFAULT_MIN_SIZE = 128
DEFAULT_TEST_FRACTION = 0.2
# Same meaning of "near-duplicate" as the rest of classification (SPOTCHECK_NEAR_DUPLICATE_DISTANCE, 6 bits).
DEFAULT_PHASH_THRESHOLD = getattr(settings, "SPOTCHECK_NEAR_DUPLICATE_DISTANCE", 6)
MAX_PHASH_THRESHOLD = 11  # beyond this, band probing explodes and "near-duplicate" stops meaning much
CHUNK = 2000
SPOOL_BYTES = 8 * 1024 * 1024
READ_THREADS = 8
READ_WINDOW = 64
# Fixed zip entry time: the zip of the same data is the same bytes too.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_MASK64 = (1 << 64) - 1
# Longer than the export task's hard time limit: a "running" export older than this lost its worker.
RUN_LEASE_SECONDS = 3 * 3600 + 600


class ExportError(ValueError):
    """Parameters a person can fix (unknown class, bad fraction…); the message says what to change."""


@dataclass(frozen=True)
class ExportParams:
    attribute: str
    sources: tuple[str, ...] = tuple(SOURCE_PRECEDENCE)
    since: str | None = None  # ISO time; resolved from "since last export" when requested
    since_last_export: bool = False
    min_width: int = DEFAULT_MIN_SIZE
    min_height: int = DEFAULT_MIN_SIZE
    classes: tuple[str, ...] = ()  # empty: every class of the attribute
    test_fraction: float = DEFAULT_TEST_FRACTION
    seed: int = 0
    phash_threshold: int = DEFAULT_PHASH_THRESHOLD
    group_by_advertiser: bool = False
    cap_per_class: int | None = None
    include_conflicting: bool = False

    def as_json(self) -> dict:
        data = asdict(self)
        data["sources"] = list(self.sources)
        data["classes"] = list(self.classes)
        return data

    @classmethod
    def from_json(cls, data: dict) -> ExportParams:
        data = dict(data)
        data["sources"] = tuple(data.get("sources") or SOURCE_PRECEDENCE)
        data["classes"] = tuple(data.get("classes") or ())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def class_folder(value: str) -> str:
    """A class name safe as a folder name ("front-3/4" → "front-3_4"); summary.json maps them back."""
    return value.replace("/", "_").replace("\\", "_")


# --- requesting -----------------------------------------------------------------------------------


def last_done_export(*, attribute: str, before: datetime | None = None) -> DatasetExport | None:
    """The attribute's most recent finished export (by snapshot), optionally taken before ``before``."""
    qs = DatasetExport.objects.filter(attribute=attribute, status=JobStatus.DONE)
    if before is not None:
        qs = qs.filter(snapshot_at__lt=before)
    return qs.order_by("-snapshot_at", "-id").first()


def export_params_build(
    *,
    attribute: str,
    sources: Iterable[str] | None = None,
    since: datetime | None = None,
    since_last_export: bool = False,
    min_width: int = DEFAULT_MIN_SIZE,
    min_height: int = DEFAULT_MIN_SIZE,
    classes: Iterable[str] | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
    phash_threshold: int = DEFAULT_PHASH_THRESHOLD,
    group_by_advertiser: bool = False,
    cap_per_class: int | None = None,
    include_conflicting: bool = False,
) -> ExportParams:
    """Validate and normalise export parameters; raises ExportError with a message a person can act on."""
    if attribute not in Attribute.values:
        raise ExportError(f"unknown attribute {attribute!r}; expected one of {', '.join(Attribute.values)}")
    source_list = sorted(set(sources or SOURCE_PRECEDENCE), key=_source_rank)
    unknown = [s for s in source_list if s not in GroundTruth.Source.values]
    if unknown:
        raise ExportError(f"unknown source(s) {', '.join(unknown)}; expected {', '.join(GroundTruth.Source.values)}")
    vocabulary = choices_for(attribute)
    class_list = [c for c in vocabulary if c in set(classes or ())]
    bad = sorted(set(classes or ()) - set(vocabulary))
    if bad:
        raise ExportError(f"unknown {attribute} class(es) {', '.join(bad)}; expected {', '.join(vocabulary)}")
    if not 0.0 <= test_fraction <= 1.0:
        raise ExportError("test fraction must be between 0 and 1")
    if min_width < 0 or min_height < 0:
        raise ExportError("minimum width and height must be positive")
    if not 0 <= phash_threshold <= MAX_PHASH_THRESHOLD:
        raise ExportError(f"near-duplicate threshold must be between 0 and {MAX_PHASH_THRESHOLD} bits")
    if cap_per_class is not None and cap_per_class < 1:
        raise ExportError("the cap per class must be at least 1 (or empty for no cap)")
    if since is not None and since_last_export:
        raise ExportError("give either a date or 'since the last export', not both")
    if since is not None and timezone.is_naive(since):
        since = timezone.make_aware(since)
    return ExportParams(
        attribute=attribute,
        sources=tuple(source_list),
        since=since.isoformat() if since else None,
        since_last_export=since_last_export,
        min_width=int(min_width),
        min_height=int(min_height),
        classes=tuple(class_list),
        test_fraction=float(test_fraction),
        seed=int(seed),
        phash_threshold=int(phash_threshold),
        group_by_advertiser=bool(group_by_advertiser),
        cap_per_class=int(cap_per_class) if cap_per_class else None,
        include_conflicting=bool(include_conflicting),
    )


@transaction.atomic
def export_request(
    *,
    params: ExportParams,
    manifest_only: bool = False,
    user: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> DatasetExport:
    """Create a queued export (its snapshot time fixed now) and enqueue it after commit."""
    from classification.tasks.datasets import export_dataset_task

    snapshot_at = timezone.now()
    if params.since_last_export:
        previous = last_done_export(attribute=params.attribute, before=snapshot_at)
        # With no previous export "since the last export" means everything.
        since = previous.snapshot_at.isoformat() if previous else None
        params = ExportParams.from_json({**params.as_json(), "since": since})
    export = DatasetExport.objects.create(
        attribute=params.attribute,
        params=params.as_json(),
        manifest_only=manifest_only,
        snapshot_at=snapshot_at,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    if enqueue:
        enqueue_on_commit(export_dataset_task, export.pk)
    return export


# --- labels ---------------------------------------------------------------------------------------


def _source_rank(source: str) -> int:
    return SOURCE_PRECEDENCE.index(source) if source in SOURCE_PRECEDENCE else len(SOURCE_PRECEDENCE)


@dataclass
class _Row:
    value: str
    source: str
    advertiser: str
    url: str
    votes: int | None
    margin: int | None
    created_at: datetime


@dataclass(frozen=True)
class Resolution:
    label: str
    conflicting: bool
    source: str  # the sources that agree with the label, in precedence order, joined by "+"
    votes: int | None
    margin: int | None
    advertisers: tuple[str, ...]
    url: str


def label_resolve(rows: list[_Row]) -> Resolution:
    """The label of one picture from its ground-truth rows (oldest first), and whether its voices conflict."""
    voices: dict[tuple[str, str], _Row] = {}
    for row in rows:  # oldest first: the last row of a voice wins
        key = (row.source, row.advertiser if row.source == GroundTruth.Source.ADVERTISER_FIX else "")
        voices[key] = row
    values = {row.value for row in voices.values()}
    ranked = sorted(voices.values(), key=lambda r: (_source_rank(r.source), -r.created_at.timestamp(), r.advertiser))
    label = ranked[0].value
    agreeing = [r for r in ranked if r.value == label]
    sources = "+".join(dict.fromkeys(r.source for r in agreeing))
    consensus = voices.get((GroundTruth.Source.CONSENSUS, ""))
    url = next((r.url for r in reversed(rows) if r.url), "")
    return Resolution(
        label=label,
        conflicting=len(values) > 1,
        source=sources,
        votes=consensus.votes if consensus else None,
        margin=consensus.margin if consensus else None,
        advertisers=tuple(sorted({r.advertiser for r in rows if r.advertiser})),
        url=url,
    )


# --- grouping -------------------------------------------------------------------------------------


class UnionFind:
    """Disjoint sets over 0..n-1 (growable) with path halving and union by size, in compact arrays."""

    def __init__(self, n: int = 0):
        self.parent = array("q", range(n))
        self.size = array("q", [1]) * n

    def add(self) -> int:
        i = len(self.parent)
        self.parent.append(i)
        self.size.append(1)
        return i

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


def _probes(radius: int) -> list[int]:
    """XOR masks of every 16-bit value within ``radius`` flips (0 included)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << b for b in bits) for bits in combinations(range(16), r)]
    return masks


def near_duplicate_pairs(hashes: Iterable[tuple[int, int]], threshold: int) -> Iterator[tuple[int, int]]:
    """Pairs of indices whose 64-bit hashes differ in at most ``threshold`` bits, from (index, hash) items:
    enough pairs to join every such couple in a union-find (not necessarily all pairs).

    Two hashes within ``t`` bits agree to within ``t // 4`` bits on at least one of their four 16-bit bands
    (pigeonhole), so looking each band up, and its neighbours within ``t // 4`` flips, finds every couple.
    Lookup tables are arrays indexed by band value (65,536 heads per band) chained through the items, so the
    memory is a few dozen bytes per picture. Identical hashes are chained to their first occurrence, so a
    picture reused a thousand times costs a thousand steps, not a million.
    """
    indices = array("q")
    values = array("Q")
    first_of: dict[int, int] = {}
    for index, h in hashes:
        h &= _MASK64
        first = first_of.get(h)
        if first is not None:
            yield indices[first], index
            continue
        first_of[h] = len(values)
        indices.append(index)
        values.append(h)
    first_of.clear()
    if threshold <= 0:
        return
    masks = _probes(threshold // 4)
    heads = [array("q", [-1]) * 65536 for _ in range(4)]
    chains = [array("q", [-1]) * len(values) for _ in range(4)]
    for a, h in enumerate(values):
        found: set[int] = set()
        for k in range(4):
            band = (h >> (16 * k)) & 0xFFFF
            head, chain = heads[k], chains[k]
            for mask in masks:
                b = head[band ^ mask]
                while b != -1:
                    if b not in found and (h ^ values[b]).bit_count() <= threshold:
                        found.add(b)
                        yield indices[b], indices[a]
                    b = chain[b]
            chain[a] = head[band]
            head[band] = a


def split_of(*, group_key: str, seed: int, test_fraction: float) -> str:
    """train or test for a group, from a keyed BLAKE2 hash: stable across processes and machines."""
    digest = hashlib.blake2b(f"{seed}:{group_key}".encode(), digest_size=8).digest()
    return "test" if int.from_bytes(digest, "big") / 2**64 < test_fraction else "train"


def _rank(seed: int, sha256: str) -> bytes:
    return hashlib.blake2b(f"cap:{seed}:{sha256}".encode(), digest_size=8).digest()


# --- running --------------------------------------------------------------------------------------


class _Progress:
    """Writes the percentage to the export row at most about once a second."""

    def __init__(self, export: DatasetExport):
        self.export = export
        self.last = 0.0
        self.value = -1

    def set(self, percent: float, *, force: bool = False) -> None:
        value = max(0, min(100, int(percent)))
        now = time.monotonic()
        if value != self.value and (force or now - self.last >= 1.0):
            DatasetExport.objects.filter(pk=self.export.pk).update(progress=value)
            self.value, self.last = value, now


def _ground_truth_rows(params: ExportParams, snapshot_at: datetime):
    qs = GroundTruth.objects.filter(
        attribute=params.attribute,
        source__in=params.sources,
        created_at__lte=snapshot_at,
        image__width__gte=params.min_width,
        image__height__gte=params.min_height,
    )
    if params.since:
        newer = GroundTruth.objects.filter(
            attribute=params.attribute,
            source__in=params.sources,
            created_at__gt=parse_datetime(params.since),
            created_at__lte=snapshot_at,
        ).values("image_id")
        qs = qs.filter(image_id__in=newer)
    return qs


def _too_small_count(params: ExportParams, snapshot_at: datetime) -> int:
    qs = GroundTruth.objects.filter(
        attribute=params.attribute, source__in=params.sources, created_at__lte=snapshot_at
    ).exclude(image__width__gte=params.min_width, image__height__gte=params.min_height)
    if params.since:
        qs = qs.filter(created_at__gt=parse_datetime(params.since))
    return qs.values("image_id").distinct().count()


def _pictures(params: ExportParams, snapshot_at: datetime) -> Iterator[tuple[tuple, list[_Row]]]:
    """(picture columns, its rows oldest first) per picture, in SHA-256 order, streamed."""
    rows = (
        _ground_truth_rows(params, snapshot_at)
        .order_by("image__sha256", "created_at", "id")
        .values_list(
            "image_id",
            "image__sha256",
            "image__width",
            "image__height",
            "image__phash",
            "image__thumbnail",
            "value",
            "source",
            "advertiser",
            "url",
            "votes",
            "margin",
            "created_at",
        )
        .iterator(chunk_size=CHUNK)
    )
    current: tuple | None = None
    bucket: list[_Row] = []
    for image_id, sha, width, height, phash, thumb, value, source, advertiser, url, votes, margin, at in rows:
        if current is None or current[0] != image_id:
            if current is not None:
                yield current, bucket
            current, bucket = (image_id, sha, width, height, phash, thumb), []
        bucket.append(_Row(value, source, advertiser, url, votes, margin, at))
    if current is not None:
        yield current, bucket


def _fallback_urls(image_ids: list[int]) -> dict[int, str]:
    """The first-seen URL of each picture that has no URL in its ground truth: one query per batch."""
    if not image_ids:
        return {}
    first = ImageSource.objects.filter(image_id__in=image_ids).values("image_id").annotate(first_id=Min("id"))
    ids = [row["first_id"] for row in first]
    return dict(ImageSource.objects.filter(id__in=ids).values_list("image_id", "url"))


def _advertisers_of(image_ids: list[int]) -> dict[int, list[str]]:
    collection = collection_get("advertiser")
    if collection is None or not image_ids:
        return {}
    return collection.keys_for(image_ids)


def job_claim(*, model: type[models.Model], pk: int, **reset) -> bool:
    """Mark a queued, failed or abandoned job running (``reset`` clears more fields); False when taken.

    A second delivery of the task while a worker is still on it does nothing, but one that comes after the
    worker died (running for longer than any run may last, RUN_LEASE_SECONDS) takes over.
    """
    stale = timezone.now() - timedelta(seconds=RUN_LEASE_SECONDS)
    claimable = Q(status__in=[JobStatus.QUEUED, JobStatus.FAILED]) | Q(status=JobStatus.RUNNING, started_at__lt=stale)
    updated = model.objects.filter(claimable, pk=pk).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), progress=0, error="", **reset
    )
    return bool(updated)


def export_run(*, export_id: int) -> DatasetExport:
    """Build an export's files into the default storage, recording progress, counts and the diff.

    Safe to run again: a done export is left alone; an interrupted one starts over.
    """
    export = DatasetExport.objects.get(pk=export_id)
    if export.status == JobStatus.DONE:
        return export
    if not job_claim(model=DatasetExport, pk=export.pk, file="", manifest=""):
        logger.info("export %s is being built by another worker", export.pk)
        export.refresh_from_db()
        return export
    for old in (export.file, export.manifest):
        if old:
            old.storage.delete(old.name)
    try:
        result = _build(export)
    except Exception as exc:
        DatasetExport.objects.filter(pk=export.pk).update(
            status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
        raise
    DatasetExport.objects.filter(pk=export.pk).update(
        status=JobStatus.DONE, progress=100, finished_at=timezone.now(), **result
    )
    export.refresh_from_db()
    return export


def _build(export: DatasetExport) -> dict:
    # Temporary files are closed (and deleted) whatever happens.
    with contextlib.ExitStack() as files:
        return _build_into(export, files)


def _build_into(export: DatasetExport, files: contextlib.ExitStack) -> dict:
    params = ExportParams.from_json(export.params)
    progress = _Progress(export)
    snapshot_at = export.snapshot_at
    zip_share = 0 if export.manifest_only else 45  # percent of the bar the pictures take
    vocabulary = choices_for(params.attribute)
    code_of = {value: code for code, value in enumerate(vocabulary)}

    total_rows = _ground_truth_rows(params, snapshot_at).count() or 1
    excluded: Counter[str] = Counter()
    excluded["too_small"] = _too_small_count(params, snapshot_at)
    wanted = set(params.classes)
    seen_rows = 0

    # Pass 1: resolve labels. Per kept picture only compact facts stay in memory (class code, cap rank,
    # perceptual hash, union-find slot: a few dozen bytes); its manifest fields go to a temporary file.
    records = files.enter_context(tempfile.TemporaryFile("w+", newline="", encoding="utf-8"))  # noqa: SIM115
    writer = csv.writer(records, lineterminator="\n")
    labels = array("b")
    ranks = array("Q")
    hashed = array("q")  # indices of pictures with a perceptual hash…
    hashes = array("Q")  # …and their hashes, unsigned
    uf = UnionFind()
    first_by_advertiser: dict[str, int] = {}
    batch: list[tuple[tuple, Resolution]] = []

    def flush() -> None:
        ids = [pic[0] for pic, _ in batch]
        urls = _fallback_urls([pic[0] for pic, res in batch if not res.url])
        groups = _advertisers_of(ids)
        for pic, res in batch:
            image_id, sha, width, height, phash, thumb = pic
            advertisers = sorted(set(res.advertisers) | set(groups.get(image_id, ())))
            i = uf.add()
            labels.append(code_of[res.label])
            if params.cap_per_class:
                ranks.append(int.from_bytes(_rank(params.seed, sha), "big"))
            if phash is not None:
                hashed.append(i)
                hashes.append(phash & _MASK64)
            if params.group_by_advertiser:
                for slug in advertisers:
                    uf.union(i, first_by_advertiser.setdefault(slug, i))
            votes = "" if res.votes is None else res.votes
            margin = "" if res.margin is None else res.margin
            url = res.url or urls.get(image_id, "")
            writer.writerow(
                [sha, res.label, res.source, votes, margin, ";".join(advertisers), url, width, height, thumb]
            )
        batch.clear()

    for pic, rows in _pictures(params, snapshot_at):
        seen_rows += len(rows)
        res = label_resolve(rows)
        if res.conflicting and not params.include_conflicting:
            excluded["conflicting"] += 1
        elif wanted and res.label not in wanted:
            excluded["other_class"] += 1
        else:
            batch.append((pic, res))
            if len(batch) >= CHUNK:
                flush()
                progress.set(seen_rows / total_rows * (90 - zip_share))
    flush()
    first_by_advertiser.clear()

    n = len(labels)
    keep = bytearray(b"\x01") * n
    if params.cap_per_class:
        for code in range(len(vocabulary)):
            members = [i for i in range(n) if labels[i] == code]
            if len(members) > params.cap_per_class:
                members.sort(key=ranks.__getitem__)
                for i in members[params.cap_per_class :]:
                    keep[i] = 0
                excluded["capped"] += len(members) - params.cap_per_class

    # Near-duplicates (among kept pictures) join groups; a group goes wholly to one side.
    kept_hashes = ((i, h) for i, h in zip(hashed, hashes, strict=True) if keep[i])
    for a, b in near_duplicate_pairs(kept_hashes, params.phash_threshold):
        uf.union(a, b)
    progress.set(90 - zip_share, force=True)

    # Pass 2: the manifest (and the zip) from the temporary records, in SHA-256 order. A group's side is
    # decided by its first member met here, which is its smallest SHA-256 whatever the insertion order.
    records.seek(0)
    side = bytearray(n)  # per union-find root: 0 undecided, 1 train, 2 test
    groups = 0
    counts: dict[str, Counter[str]] = {"train": Counter(), "test": Counter()}
    manifest = files.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))  # noqa: SIM115
    manifest_text = io.TextIOWrapper(manifest, encoding="utf-8", newline="", write_through=True)
    manifest_writer = csv.writer(manifest_text, lineterminator="\n")
    manifest_writer.writerow(MANIFEST_COLUMNS)
    archive_file = None
    if not export.manifest_only:
        archive_file = files.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))  # noqa: SIM115
    archive = None
    if archive_file is not None:
        archive = files.enter_context(zipfile.ZipFile(archive_file, "w", allowZip64=True))
    kept_count = sum(keep)
    written = 0
    kept_records = ((i, record) for i, record in enumerate(csv.reader(records)) if keep[i])
    # Thumbnails are read a window ahead by a few threads (S3 answers each GET in tens of milliseconds)
    # and written in manifest order; at most one window of pictures is in memory.
    readers = files.enter_context(ThreadPoolExecutor(max_workers=READ_THREADS)) if archive is not None else None
    for window in _windows(kept_records, READ_WINDOW):
        if readers is not None:
            pictures = list(readers.map(_thumbnail_bytes, [record[9] for _, record in window]))
        else:
            pictures = [None] * len(window)
        for (i, record), data in zip(window, pictures, strict=True):
            sha, label, source, votes, margin, advertisers, url, width, height, _thumb = record
            root = uf.find(i)
            if not side[root]:
                groups += 1
                test = split_of(group_key=sha, seed=params.seed, test_fraction=params.test_fraction) == "test"
                side[root] = 2 if test else 1
            part = "test" if side[root] == 2 else "train"
            if archive is not None:
                if data is None:
                    excluded["missing_picture"] += 1
                    continue
                info = zipfile.ZipInfo(f"{part}/{class_folder(label)}/{sha}.jpg", date_time=ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_STORED  # JPEG does not compress further; storing is fast
                archive.writestr(info, data)
            manifest_writer.writerow([sha, part, label, source, votes, margin, advertisers, url, width, height])
            counts[part][label] += 1
            written += 1
            if written % 500 == 0:
                progress.set(90 - zip_share + written / max(kept_count, 1) * zip_share)

    counts_json = {part: {c: counts[part][c] for c in vocabulary if counts[part][c]} for part in ("train", "test")}
    summary = {
        "attribute": params.attribute,
        "parameters": params.as_json(),
        "manifest_only": export.manifest_only,
        "snapshot_at": export.snapshot_at.isoformat(),
        "rows": written,
        "groups": groups,
        "counts": counts_json,
        "excluded": dict(sorted(excluded.items())),
        "class_folders": {class_folder(c): c for c in vocabulary},
        "manifest_columns": list(MANIFEST_COLUMNS),
    }
    summary_bytes = json.dumps(summary, indent=2, sort_keys=True).encode() + b"\n"

    base = f"exports/{params.attribute}/{export.pk:06d}-{secrets.token_hex(8)}"
    manifest_text.flush()
    manifest.seek(0)
    manifest_name = default_storage.save(f"{base}/manifest.csv", File(manifest, name="manifest.csv"))
    if archive is not None:
        manifest.seek(0)
        info = zipfile.ZipInfo("manifest.csv", date_time=ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as entry:
            while chunk := manifest.read(1 << 20):
                entry.write(chunk)
        info = zipfile.ZipInfo("summary.json", date_time=ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, summary_bytes)
        archive.close()
        archive_file.seek(0)
        file_name = default_storage.save(f"{base}/dataset.zip", File(archive_file, name="dataset.zip"))
    else:
        file_name = manifest_name
    manifest_text.detach()  # the spooled file is closed by the exit stack
    progress.set(97, force=True)

    export.manifest.name = manifest_name
    previous = last_done_export(attribute=params.attribute, before=export.snapshot_at)
    diff = manifest_diff(old=previous, new=export) if previous and previous.manifest else {}
    return {
        "file": file_name,
        "manifest": manifest_name,
        "counts": counts_json,
        "summary": summary,
        "diff": diff,
        "rows": written,
    }


def _windows(items: Iterable, size: int) -> Iterator[list]:
    window: list = []
    for item in items:
        window.append(item)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def _thumbnail_bytes(name: str) -> bytes | None:
    if not name:
        return None
    try:
        with default_storage.open(name, "rb") as f:
            return f.read()
    except (OSError, ValueError):
        logger.warning("export: thumbnail %s is missing", name)
        return None


# --- reading manifests ----------------------------------------------------------------------------


def manifest_rows(export: DatasetExport) -> Iterator[dict[str, str]]:
    """The rows of an export's manifest, streamed from the default storage."""
    with export.manifest.storage.open(export.manifest.name, "rb") as raw:
        yield from csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))


def manifest_diff(*, old: DatasetExport, new: DatasetExport, examples: int = 10) -> dict:
    """Pictures added, removed and relabelled between two exports: a merge of two SHA-256-sorted manifests."""
    added = removed = relabelled = same = 0
    shown: dict[str, list] = {"added": [], "removed": [], "relabelled": []}
    a_iter, b_iter = manifest_rows(old), manifest_rows(new)
    a, b = next(a_iter, None), next(b_iter, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a["sha256"] < b["sha256"]):
            removed += 1
            if len(shown["removed"]) < examples:
                shown["removed"].append({"sha256": a["sha256"], "label": a["label"]})
            a = next(a_iter, None)
        elif a is None or b["sha256"] < a["sha256"]:
            added += 1
            if len(shown["added"]) < examples:
                shown["added"].append({"sha256": b["sha256"], "label": b["label"]})
            b = next(b_iter, None)
        else:
            if a["label"] != b["label"]:
                relabelled += 1
                if len(shown["relabelled"]) < examples:
                    shown["relabelled"].append({"sha256": b["sha256"], "old": a["label"], "new": b["label"]})
            else:
                same += 1
            a, b = next(a_iter, None), next(b_iter, None)
    return {
        "previous_id": old.pk,
        "added": added,
        "removed": removed,
        "relabelled": relabelled,
        "unchanged": same,
        "examples": shown,
    }


def presigned_url(*, field) -> str | None:
    """A short-lived presigned URL when the file's storage signs them (S3), else None (the view streams it)."""
    if not field:
        return None
    storage = field.storage
    if getattr(storage, "querystring_auth", False):
        return storage.url(field.name)
    return None


def file_response(*, export: DatasetExport, manifest: bool = False) -> HttpResponseBase:
    """The export's file (or its manifest) for a download: a redirect to a presigned URL, else the bytes."""
    field = export.manifest if manifest else export.file
    if not field:
        raise Http404("this export has no such file")
    url = presigned_url(field=field)
    if url:
        # S3: the bytes never pass through the web process, and the link dies after a few minutes.
        return HttpResponseRedirect(url)
    suffix = "csv" if manifest or export.manifest_only else "zip"
    name = f"spotcheck-{export.attribute}-{export.pk}{'-manifest' if manifest else ''}.{suffix}"
    return FileResponse(field.storage.open(field.name, "rb"), as_attachment=True, filename=name)
