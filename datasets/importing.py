"""Import of an existing labelled dataset as ground truth (source "import").

The layout is the one our export writes and Keras / torchvision read: a folder per class, ``DIR/<label>/*``,
or the same under split folders, ``DIR/train/<label>/*`` and ``DIR/test/<label>/*`` (the split of the
import is not kept: exports make their own grouped split). Folder names are matched to the attribute's
vocabulary case-insensitively, also in the export's folder spelling ("front-3_4" for "front-3/4").

Every folder is checked before anything is stored: an unknown label refuses the whole import with a message
that names it and lists the labels the attribute takes. A picture met twice (same SHA-256) counts once; met
under two different labels it is recorded under neither and reported. Re-importing the same folder records
nothing new. Pictures go through the same guards and classification as any other picture.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings

from classification.models import GroundTruth
from classification.services import ImageRejected, ground_truth_record, image_from_bytes
from classification.vocabulary import choices_for, normalize
from core.errors import ApplicationError
from core.jobs import JobStatus, job_claim, job_run
from datasets.export import class_folder
from datasets.models import DatasetImport

SPLIT_FOLDERS = ("train", "test", "validation", "val")
MAX_ZIP_MEMBERS = 200_000
MAX_ZIP_BYTES = 20 * 1024**3  # uncompressed: refuse zip bombs before extracting anything
IMPORT_LEASE_SECONDS = 6 * 3600


class DatasetImportError(ApplicationError):
    """A dataset that cannot be imported as it is; the message says what to change."""


@dataclass
class ImportPlan:
    """The files of a dataset folder with the vocabulary value of each, in a stable order."""

    attribute: str
    files: list[tuple[Path, str]] = field(default_factory=list)


@dataclass
class ImportReport:
    """What an import did, by picture: the counts a person checks after it."""

    files: int = 0
    pictures: int = 0  # distinct SHA-256 among readable files
    recorded: int = 0  # new ground-truth rows
    already: int = 0  # pictures whose import label was already recorded
    duplicates: int = 0  # files whose picture was met before in this import
    conflicting: int = 0  # pictures met under two labels: recorded under neither
    rejected: Counter = field(default_factory=Counter)  # reason → files
    per_label: Counter = field(default_factory=Counter)

    def as_json(self) -> dict:
        return {
            "files": self.files,
            "pictures": self.pictures,
            "recorded": self.recorded,
            "already": self.already,
            "duplicates": self.duplicates,
            "conflicting": self.conflicting,
            "rejected": dict(self.rejected),
            "per_label": dict(sorted(self.per_label.items())),
        }


def _label_of(attribute: str, folder: str) -> str | None:
    by_folder = {class_folder(v).casefold(): v for v in choices_for(attribute)}
    return normalize(attribute, folder) or by_folder.get(folder.strip().casefold())


def _class_dirs(root: Path) -> Iterator[Path]:
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if child.name.casefold() in SPLIT_FOLDERS:
            yield from (d for d in sorted(child.iterdir()) if d.is_dir() and not d.name.startswith("."))
        else:
            yield child


def plan_read(*, directory: Path, attribute: str) -> ImportPlan:
    """Every picture file of a folder-per-class dataset with its label. Raises DatasetImportError when a
    folder names no value of the attribute, or when there is nothing to import."""
    choices_for(attribute)  # an unknown attribute raises ValueError with the list
    root = Path(directory)
    if not root.is_dir():
        raise DatasetImportError(f"{root} is not a folder")
    plan = ImportPlan(attribute=attribute)
    unknown: dict[str, int] = {}
    for folder in _class_dirs(root):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        label = _label_of(attribute, folder.name)
        if label is None:
            unknown[str(folder.relative_to(root))] = len(files)
            continue
        plan.files.extend((path, label) for path in files)
    if unknown:
        names = ", ".join(f"{name!r} ({n} files)" for name, n in sorted(unknown.items()))
        raise DatasetImportError(
            f"unknown {attribute} labels: {names}. Folders must be named after one of: "
            f"{', '.join(choices_for(attribute))}. Nothing was imported."
        )
    if not plan.files:
        raise DatasetImportError(f"{root} holds no pictures in folders named after {attribute} values")
    return plan


def dataset_import(
    *,
    plan: ImportPlan,
    reference: str,
    user=None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Store each picture (classified once, like any other) and record its label as ground truth.

    Conflicting pictures are found first (hashing is cheap), so nothing is recorded for them whatever the
    order of the files. ``on_progress(done, total)`` is called after each file.
    """
    report = ImportReport(files=len(plan.files))
    max_bytes = settings.SPOTCHECK_FETCH_MAX_BYTES
    labels_by_sha: dict[str, set[str]] = {}
    shas: list[str | None] = []
    for path, label in plan.files:
        sha = None
        if path.stat().st_size <= max_bytes:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            labels_by_sha.setdefault(sha, set()).add(label)
        shas.append(sha)
    conflicting = {sha for sha, labels in labels_by_sha.items() if len(labels) > 1}
    report.conflicting = len(conflicting)
    seen: set[str] = set()
    for done, ((path, label), sha) in enumerate(zip(plan.files, shas, strict=True), 1):
        if sha is None:
            report.rejected["too_large"] += 1
        elif sha in seen:
            report.duplicates += 1
        else:
            seen.add(sha)
            _import_one(
                path=path,
                label=label,
                sha=sha,
                conflicting=sha in conflicting,
                plan=plan,
                report=report,
                reference=reference,
                user=user,
            )
        if on_progress is not None:
            on_progress(done, len(plan.files))
    return report


def _import_one(*, path, label, sha, conflicting, plan, report, reference, user) -> None:
    try:
        image = image_from_bytes(data=path.read_bytes())
    except ImageRejected as exc:
        report.rejected[str(exc.reason)] += 1
        return
    report.pictures += 1
    if conflicting:
        return
    if GroundTruth.objects.filter(
        image=image, attribute=plan.attribute, source=GroundTruth.Source.IMPORT, value=label
    ).exists():
        report.already += 1
        return
    ground_truth_record(
        image=image,
        attribute=plan.attribute,
        value=label,
        source=GroundTruth.Source.IMPORT,
        reference=reference[:200],
        url=str(PurePosixPath(path.parent.name, path.name)),
        user=user,
    )
    report.recorded += 1
    report.per_label[label] += 1


@contextmanager
def zip_extracted(data: bytes | io.BufferedIOBase) -> Iterator[Path]:
    """A folder-per-class zip unpacked into a temporary folder, removed afterwards. Refuses archives with
    too many members, too many bytes once unpacked, or paths that leave the folder."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except zipfile.BadZipFile as exc:
        raise DatasetImportError(f"not a zip file ({exc})") from None
    with archive, tempfile.TemporaryDirectory(prefix="spotcheck-import-") as tmp:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise DatasetImportError(f"the zip holds {len(members)} entries; at most {MAX_ZIP_MEMBERS} are accepted")
        if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise DatasetImportError("the zip unpacks to more than 20 GiB")
        root = Path(tmp).resolve()
        for member in members:
            target = (root / member.filename).resolve()
            if not target.is_relative_to(root):
                raise DatasetImportError(f"the zip entry {member.filename!r} points outside the archive")
            if member.is_dir():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as sink:
                # One byte over the cap is enough for the import to count the picture as too large.
                sink.write(source.read(settings.SPOTCHECK_FETCH_MAX_BYTES + 1))
        yield _single_top_folder(root)


def _single_top_folder(root: Path) -> Path:
    """A zip of one folder ("dataset/<label>/…") is read from inside that folder."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        if not any(p.is_file() for p in inner.iterdir()) and not any(
            d.name.casefold() in SPLIT_FOLDERS for d in root.iterdir() if d.is_dir()
        ):
            # "dataset/<label>/*": one level down holds the class folders
            return inner
    return root


def import_run(*, import_id: int) -> DatasetImport:
    """Import an uploaded zip (a DatasetImport row); the zip is deleted once the import is done. A finished
    import is left alone; an interrupted one runs again (pictures already recorded are not recorded twice)."""
    job = DatasetImport.objects.get(pk=import_id)
    if job.status == JobStatus.DONE:
        return job
    if not job_claim(model=DatasetImport, pk=job.pk, lease_seconds=IMPORT_LEASE_SECONDS):
        return job
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= 1.0:
            DatasetImport.objects.filter(pk=job.pk).update(progress=min(99, done * 100 // max(total, 1)))
            last[0] = time.monotonic()

    def work() -> dict:
        with job.file.open("rb") as upload, zip_extracted(upload) as folder:
            plan = plan_read(directory=folder, attribute=job.attribute)
            report = dataset_import(
                plan=plan, reference=f"datasets.import:{job.pk}", user=job.created_by, on_progress=progress
            )
        return report.as_json()

    job_run(rows=DatasetImport.objects.filter(pk=job.pk), work=work, done=lambda report: {"report": report})
    job.refresh_from_db()
    job.file.delete(save=True)
    return job
