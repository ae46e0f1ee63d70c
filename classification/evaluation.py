"""Model evaluation on an export's split: accuracy, per-class precision and recall, confusion matrix, and
per-advertiser ("local") accuracy, for several model versions side by side over one decode per picture."""

from __future__ import annotations

import io
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image as PILImage

from classification.export import manifest_rows
from classification.models import DatasetExport, Evaluation, Image, JobStatus, ModelVersion
from classification.vocabulary import DISPLAY_DEFAULTS, ML_ATTRIBUTES, choices_for
from core.outbox import enqueue_on_commit

logger = logging.getLogger(__name__)

NONE_LABEL = "(none)"  # what a model "said" when it returned nothing and the attribute has no default
BATCH = 16  # pictures decoded ahead (about 1 MB each at 640 x 480): bounded memory
READ_THREADS = 4
DECODE_SIZE = (640, 480)


class EvaluationError(ValueError):
    """An evaluation that cannot be run as asked (unfinished export, attribute no model produces…)."""


@dataclass(frozen=True)
class Sample:
    sha256: str
    label: str
    advertisers: tuple[str, ...]
    picture: PILImage.Image


def picture_decode(data: bytes) -> PILImage.Image:
    """Decode a stored thumbnail the way the classifier expects it: RGB, downscaled on decode."""
    picture = PILImage.open(io.BytesIO(data))
    picture.draft("RGB", DECODE_SIZE)
    return picture.convert("RGB")


def split_rows(*, export: DatasetExport, split: str) -> Iterator[dict[str, str]]:
    """The manifest rows of one split ("train" or "test"), streamed."""
    return (row for row in manifest_rows(export) if row["split"] == split)


def split_size(*, export: DatasetExport, split: str) -> int:
    """How many pictures a split holds, from the export's counts (no storage read)."""
    return int(sum((export.counts or {}).get(split, {}).values()))


def _load(name: str | None) -> PILImage.Image | None:
    if not name:
        return None
    try:
        with default_storage.open(name, "rb") as f:
            return picture_decode(f.read())
    except (OSError, ValueError):
        return None


def samples(*, export: DatasetExport, split: str) -> Iterator[Sample]:
    """The pictures of an export's split with their labels, streamed: one query per batch of rows, pictures
    read and decoded a batch ahead by a few threads (Pillow decodes without the GIL; S3 reads wait)."""
    batch: list[dict[str, str]] = []

    def emit(pool: ThreadPoolExecutor) -> Iterator[Sample]:
        thumbs = dict(Image.objects.filter(sha256__in=[r["sha256"] for r in batch]).values_list("sha256", "thumbnail"))
        pictures = pool.map(_load, [thumbs.get(r["sha256"]) for r in batch])
        for row, picture in zip(batch, pictures, strict=True):
            if picture is None:
                logger.warning("evaluation: picture %s has no readable thumbnail", row["sha256"])
                continue
            advertisers = tuple(a for a in row["advertiser"].split(";") if a)
            yield Sample(row["sha256"], row["label"], advertisers, picture)
        batch.clear()

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for row in split_rows(export=export, split=split):
            batch.append(row)
            if len(batch) >= BATCH:
                yield from emit(pool)
        if batch:
            yield from emit(pool)


def predicted_value(attribute: str, value: str | None) -> str:
    """What the service shows for a model's answer: the display default when it returned nothing."""
    return value or DISPLAY_DEFAULTS.get(attribute) or NONE_LABEL


def metrics_compute(*, attribute: str, outcomes: Iterable[tuple[str, str, Sequence[str]]]) -> dict:
    """Metrics from (truth, predicted, advertisers) triples. Pure; precision/recall are None when undefined."""
    confusion: Counter[tuple[str, str]] = Counter()
    per_advertiser: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    n = correct = 0
    for truth, predicted, advertisers in outcomes:
        n += 1
        hit = truth == predicted
        correct += hit
        confusion[(truth, predicted)] += 1
        for slug in advertisers:
            per_advertiser[slug][0] += 1
            per_advertiser[slug][1] += hit
    seen = {t for t, _ in confusion} | {p for _, p in confusion}
    labels = [c for c in choices_for(attribute) if c in seen] + sorted(seen - set(choices_for(attribute)))
    classes = {}
    recalls = []
    for label in labels:
        tp = confusion[(label, label)]
        support = sum(v for (t, _), v in confusion.items() if t == label)
        said = sum(v for (_, p), v in confusion.items() if p == label)
        recall = tp / support if support else None
        if recall is not None:
            recalls.append(recall)
        classes[label] = {"precision": tp / said if said else None, "recall": recall, "support": support}
    return {
        "attribute": attribute,
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        # Mean recall over the classes present: not fooled by a dominant class.
        "balanced_accuracy": sum(recalls) / len(recalls) if recalls else None,
        "classes": classes,
        "confusion": {"labels": labels, "matrix": [[confusion[(t, p)] for p in labels] for t in labels]},
        "advertisers": {
            slug: {"n": total, "correct": hits, "accuracy": hits / total}
            for slug, (total, hits) in sorted(per_advertiser.items())
        },
    }


def classify_fn(model_version: ModelVersion, attribute: str) -> Callable[[PILImage.Image], str]:
    """picture → the value the version gives the attribute (display default when none)."""
    from classification.classifiers import classifier_for

    classifier = classifier_for(model_version)

    def run(picture: PILImage.Image) -> str:
        value, _score = classifier.classify(picture).get(attribute, (None, None))
        return predicted_value(attribute, value)

    return run


def evaluate_samples(
    *, attribute: str, items: Iterable[Sample], models: dict[object, Callable], on_progress: Callable | None = None
) -> dict[object, dict]:
    """Run every model on every sample (decoded once) and compute each model's metrics."""
    outcomes: dict[object, list] = {key: [] for key in models}
    for i, sample in enumerate(items, 1):
        for key, fn in models.items():
            outcomes[key].append((sample.label, fn(sample.picture), sample.advertisers))
        if on_progress is not None:
            on_progress(i)
    return {key: metrics_compute(attribute=attribute, outcomes=rows) for key, rows in outcomes.items()}


def _check_export(export: DatasetExport) -> None:
    if export.status != JobStatus.DONE or not export.manifest:
        raise EvaluationError(f"export #{export.pk} is not finished")
    if export.attribute not in ML_ATTRIBUTES:
        raise EvaluationError(f"no model produces {export.attribute}; evaluate an image_type or color export")


def evaluation_versions_default() -> list[ModelVersion]:
    """The active versions and the candidates: what an admin compares before a promotion."""
    return list(
        ModelVersion.objects.filter(status__in=[ModelVersion.Status.ACTIVE, ModelVersion.Status.CANDIDATE]).order_by(
            "status", "-created_at"
        )
    )


@transaction.atomic
def evaluation_request(
    *, export: DatasetExport, model_versions: Sequence[ModelVersion], enqueue: bool = True
) -> list[Evaluation]:
    """(Re)queue one evaluation per version of the export's test split and enqueue one job after commit."""
    from classification.tasks.datasets import evaluate_models_task

    _check_export(export)
    if not model_versions:
        raise EvaluationError("choose at least one model version")
    evaluations = []
    for version in model_versions:
        evaluation, _ = Evaluation.objects.update_or_create(
            export=export,
            model_version=version,
            defaults={"status": JobStatus.QUEUED, "progress": 0, "metrics": {}, "error": "", "finished_at": None},
        )
        evaluations.append(evaluation)
    ids = [e.pk for e in evaluations]
    if enqueue:
        enqueue_on_commit(evaluate_models_task, ids)
    return evaluations


def evaluation_run(*, evaluation_ids: Sequence[int]) -> list[Evaluation]:
    """Evaluate versions on their export's test split, decoding each picture once; safe to run again."""
    evaluations = list(
        Evaluation.objects.filter(pk__in=evaluation_ids)
        .exclude(status=JobStatus.DONE)
        .select_related("export", "model_version")
    )
    by_export: dict[int, list[Evaluation]] = defaultdict(list)
    for evaluation in evaluations:
        by_export[evaluation.export_id].append(evaluation)
    for group in by_export.values():
        _run_group(group)
    return list(Evaluation.objects.filter(pk__in=evaluation_ids))


def _run_group(group: list[Evaluation]) -> None:
    export = group[0].export
    ids = [e.pk for e in group]
    Evaluation.objects.filter(pk__in=ids).update(status=JobStatus.RUNNING, progress=0, error="")
    total = max(split_size(export=export, split="test"), 1)
    last = [0.0]

    def progress(done: int) -> None:
        if time.monotonic() - last[0] >= 1.0:
            Evaluation.objects.filter(pk__in=ids).update(progress=min(99, int(done * 100 / total)))
            last[0] = time.monotonic()

    try:
        _check_export(export)
        models = {e.pk: classify_fn(e.model_version, export.attribute) for e in group}
        results = evaluate_samples(
            attribute=export.attribute, items=samples(export=export, split="test"), models=models, on_progress=progress
        )
    except Exception as exc:
        Evaluation.objects.filter(pk__in=ids).update(
            status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
        raise
    now = timezone.now()
    for evaluation in group:
        metrics = {**results[evaluation.pk], "export_id": export.pk}
        Evaluation.objects.filter(pk=evaluation.pk).update(
            status=JobStatus.DONE, progress=100, metrics=metrics, finished_at=now
        )


def evaluations_side_by_side(*, export: DatasetExport) -> list[Evaluation]:
    """An export's evaluations with their versions, active first then candidates: one query."""
    order = {ModelVersion.Status.ACTIVE: 0, ModelVersion.Status.CANDIDATE: 1, ModelVersion.Status.RETIRED: 2}
    rows = list(export.evaluations.select_related("model_version"))
    rows.sort(key=lambda e: (order.get(e.model_version.status, 3), -(e.metrics.get("accuracy") or 0)))
    return rows
