"""Retraining the learned classifier from ground truth, as seed 002 describes it: several candidate heads
(feature sets by regularisation) fitted on an export's train split, each evaluated on its grouped test split
beside the model that serves, and the best promoted only when it beats that model on the same split.

Pictures are never decoded twice: features come from the per-picture cache (``classification.features``),
computed from the stored thumbnail only for pictures classified by another backend. A candidate is a learned
``ModelVersion`` carrying the active learned version's other heads and its new head for the attribute, so
promoting it changes that attribute only. Evaluations are stored in the ``Evaluation`` table in the shape the
evaluation page reads (per class, per advertiser, confusion), plus calibration (ECE, reliability table).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from classification import features
from classification.classifiers.learned import default_params, heads_of
from classification.heads import FEATURE_DIM, Head, head_evaluate, head_train
from classification.models import Backend, Image, ModelVersion
from classification.promotion import model_promote
from classification.selectors import model_version_active
from classification.services import model_version_ensure_active
from classification.vocabulary import choices_for
from core.errors import ApplicationError
from core.jobs import JobStatus, job_claim, job_run
from datasets import evaluation
from datasets.export import RUN_LEASE_SECONDS, export_run, manifest_rows
from datasets.models import DatasetExport, Evaluation, TrainingRun

logger = logging.getLogger(__name__)

# (feature set, inverse regularisation C), tried in this order: the first ``candidates`` of them.
CANDIDATE_GRID: tuple[tuple[str, float], ...] = (
    ("embedding+builtin", 1.0),
    ("embedding+builtin", 0.1),
    ("embedding", 1.0),
    ("embedding+builtin", 10.0),
    ("embedding", 0.1),
    ("builtin", 1.0),
    ("embedding+builtin", 0.02),
    ("embedding", 10.0),
)
MIN_CANDIDATES, MAX_CANDIDATES = 4, len(CANDIDATE_GRID)
FOLDS = 3  # out-of-fold logits for the temperature: 3 folds keep 10,000 pictures at minutes
READ_THREADS = 4
BATCH = 32
QUERY_CHUNK = 500  # SHA-256s per IN (): well under SQLite's parameter limit


class TrainingError(ApplicationError):
    """A training run that cannot be done as asked; the message says why."""


@dataclass
class Split:
    """One split of an export's manifest: pictures, labels, the advertisers that showed each."""

    shas: list[str]
    labels: list[str]
    advertisers: list[tuple[str, ...]]

    def take(self, keep: Sequence[int]) -> Split:
        return Split([self.shas[i] for i in keep], [self.labels[i] for i in keep], [self.advertisers[i] for i in keep])


def splits_read(*, export: DatasetExport) -> dict[str, Split]:
    """The export's train and test splits from its manifest."""
    splits = {name: Split([], [], []) for name in ("train", "test")}
    for row in manifest_rows(export):
        split = splits.get(row["split"])
        if split is not None:
            split.shas.append(row["sha256"])
            split.labels.append(row["label"])
            split.advertisers.append(tuple(a for a in row["advertiser"].split(";") if a))
    return splits


def _decode_thumbnail(name: str) -> object | None:
    try:
        with default_storage.open(name, "rb") as f:
            return evaluation.picture_decode(f.read())
    except (OSError, ValueError):
        return None


def features_ensure(*, shas: Sequence[str], on_progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Feature vectors by SHA-256: cached ones read, missing ones computed from the stored thumbnail and
    cached (float16, as the classifier stores them). Pictures without a readable thumbnail are left out."""
    wanted = list(dict.fromkeys(shas))
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(wanted), QUERY_CHUNK):
        vectors.update(features.features_cached(sha256s=wanted[start : start + QUERY_CHUNK]))
    missing = [s for s in wanted if s not in vectors]
    thumbs: dict[str, str] = {}
    for start in range(0, len(missing), QUERY_CHUNK):
        chunk = missing[start : start + QUERY_CHUNK]
        thumbs.update(Image.objects.filter(sha256__in=chunk).exclude(thumbnail="").values_list("sha256", "thumbnail"))
    todo = [s for s in missing if s in thumbs]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            pictures = pool.map(_decode_thumbnail, [thumbs[s] for s in batch])
            decoded = [(s, p) for s, p in zip(batch, pictures, strict=True) if p is not None]
            if decoded:
                computed = features.compute([p for _, p in decoded]).astype("<f2")
                fresh = {s: v for (s, _), v in zip(decoded, computed, strict=True)}
                features.features_store(vectors=fresh)
                vectors.update({s: v.astype(np.float32) for s, v in fresh.items()})
            if on_progress is not None:
                on_progress(len(vectors))
    left_out = len(wanted) - len(vectors)
    if left_out:
        logger.warning("training: %d pictures have no readable thumbnail and are left out", left_out)
    return vectors


def _matrix(split: Split, vectors: dict[str, np.ndarray]) -> tuple[Split, np.ndarray]:
    keep = [i for i, sha in enumerate(split.shas) if sha in vectors]
    kept = split.take(keep)
    matrix = np.stack([vectors[s] for s in kept.shas]) if keep else np.zeros((0, FEATURE_DIM), np.float32)
    return kept, matrix


def base_heads() -> dict[str, Head]:
    """The heads a candidate starts from: the active learned version's (or the shipped defaults), when they
    were trained on the features this installation computes."""
    active = model_version_active(backend=Backend.LEARNED)
    version, heads = heads_of(active.params if active else default_params())
    return heads if version == features.features_version() else {}


def _metrics(*, attribute: str, test: Split, predicted: Sequence[str], extra: dict | None = None) -> dict:
    outcomes = zip(test.labels, predicted, test.advertisers, strict=True)
    return {**evaluation.metrics_compute(attribute=attribute, outcomes=outcomes), **(extra or {})}


def head_metrics(head: Head, *, attribute: str, test: Split, x_test: np.ndarray) -> dict:
    """A head on the test split: the evaluation page's metrics, plus calibration (ECE, reliability table) and
    the mean negative log-likelihood of the true labels (a proper score: lower is better)."""
    report = head_evaluate(head, features=x_test, labels=test.labels)
    probabilities = head.probabilities(x_test)
    predicted = [head.classes[i] for i in probabilities.argmax(axis=1)]
    index = {c: i for i, c in enumerate(head.classes)}
    truth = [index.get(label) for label in test.labels]
    likelihood = [probabilities[row, i] for row, i in enumerate(truth) if i is not None]
    nll = float(-np.log(np.clip(likelihood, 1e-12, None)).mean()) if likelihood else None
    extra = {"ece": report["ece"], "reliability": report["reliability"], "nll": nll, "feature_set": head.feature_set}
    return _metrics(attribute=attribute, test=test, predicted=predicted, extra=extra)


def active_metrics(*, version: ModelVersion, attribute: str, test: Split, x_test: np.ndarray) -> dict:
    """How the serving model does on the test split: a learned head on the cached features, anything else
    through its classifier on the decoded thumbnails (the evaluation page's way)."""
    if version.backend == Backend.LEARNED:
        feature_version, heads = heads_of(version.params or {})
        head = heads.get(attribute)
        if head is not None and feature_version == features.features_version() and len(test.shas):
            return head_metrics(head, attribute=attribute, test=test, x_test=x_test)
    classify = evaluation.classify_fn(version, attribute)
    thumbs = dict(Image.objects.filter(sha256__in=test.shas).values_list("sha256", "thumbnail"))
    predicted = []
    for sha in test.shas:
        picture = _decode_thumbnail(thumbs[sha]) if thumbs.get(sha) else None
        predicted.append(classify(picture) if picture is not None else evaluation.NONE_LABEL)
    return _metrics(attribute=attribute, test=test, predicted=predicted)


def candidate_heads(*, attribute: str, train: Split, x_train: np.ndarray, count: int, seed: int = 0) -> list[Head]:
    """``count`` heads from the grid, each fitted and calibrated on the train split."""
    if not MIN_CANDIDATES <= count <= MAX_CANDIDATES:
        raise TrainingError(f"train between {MIN_CANDIDATES} and {MAX_CANDIDATES} candidates, not {count}")
    classes = choices_for(attribute)
    return [
        head_train(
            attribute=attribute,
            features=x_train,
            labels=train.labels,
            classes=classes,
            feature_set=feature_set,
            c=c,
            folds=FOLDS,
            seed=seed,
        )
        for feature_set, c in CANDIDATE_GRID[:count]
    ]


def _rank_key(metrics: dict) -> tuple:
    nll = metrics.get("nll")
    return (-(metrics.get("accuracy") or 0), -(metrics.get("balanced_accuracy") or 0), nll if nll is not None else 1e9)


def beats(candidate: dict, active: dict) -> bool:
    """Better on the same split: higher accuracy; or the same accuracy and balanced accuracy with a lower
    negative log-likelihood (surer of the right answers, less sure of the wrong ones), when both models give
    probabilities. A model that is right as often and no better calibrated does not replace the active one."""
    ours = (candidate.get("accuracy") or 0, candidate.get("balanced_accuracy") or 0)
    theirs = (active.get("accuracy") or 0, active.get("balanced_accuracy") or 0)
    if ours != theirs:
        return ours > theirs
    nll, active_nll = candidate.get("nll"), active.get("nll")
    return nll is not None and active_nll is not None and nll < active_nll


def training_run(*, run_id: int) -> TrainingRun:
    """Train, evaluate and (if asked and better) promote; a finished run is left alone, an interrupted one
    starts over (its unpromoted candidates are replaced)."""
    run = TrainingRun.objects.select_related("export").get(pk=run_id)
    if run.status == JobStatus.DONE:
        return run
    if not job_claim(model=TrainingRun, pk=run.pk, lease_seconds=RUN_LEASE_SECONDS):
        return run
    ModelVersion.objects.filter(name__startswith=f"learned-run{run.pk}-", status=ModelVersion.Status.CANDIDATE).delete()
    job_run(
        rows=TrainingRun.objects.filter(pk=run.pk),
        work=lambda: _train(run),
        done=lambda outcome: {"results": outcome[0], "promoted": outcome[1]},
    )
    run.refresh_from_db()
    return run


def _progress(run: TrainingRun) -> Callable[[float], None]:
    last = [0.0]

    def set_(percent: float) -> None:
        if time.monotonic() - last[0] >= 1.0:
            TrainingRun.objects.filter(pk=run.pk).update(progress=min(99, int(percent)))
            last[0] = time.monotonic()

    return set_


def _train(run: TrainingRun) -> tuple[list[dict], ModelVersion | None]:
    export = run.export
    if export.status != JobStatus.DONE:  # requested with the run: built here, first
        export = export_run(export_id=export.pk)
    if export.status != JobStatus.DONE or not export.manifest:
        raise TrainingError(f"export #{export.pk} is not finished: {export.error or export.status}")
    attribute = export.attribute
    progress = _progress(run)
    splits = splits_read(export=export)
    everything = splits["train"].shas + splits["test"].shas
    if not splits["train"].shas or not splits["test"].shas:
        raise TrainingError(f"export #{export.pk} needs pictures in both its train and test splits")
    total = max(len(set(everything)), 1)
    vectors = features_ensure(shas=everything, on_progress=lambda n: progress(40 * n / total))
    train, x_train = _matrix(splits["train"], vectors)
    test, x_test = _matrix(splits["test"], vectors)
    if len(set(train.labels)) < 2:
        raise TrainingError(f"the train split of export #{export.pk} has labels of fewer than two {attribute} values")

    serving = model_version_ensure_active()
    active = active_metrics(version=serving, attribute=attribute, test=test, x_test=x_test)
    progress(50)
    heads = candidate_heads(attribute=attribute, train=train, x_train=x_train, count=run.candidates, seed=run.pk)
    progress(85)
    others = {a: h for a, h in base_heads().items() if a != attribute}
    scored = [(head, head_metrics(head, attribute=attribute, test=test, x_test=x_test)) for head in heads]
    scored.sort(key=lambda pair: _rank_key(pair[1]))

    results: list[dict] = []
    promoted = None
    with transaction.atomic():
        Evaluation.objects.update_or_create(
            export=export, model_version=serving, defaults=_evaluation_fields(active, export)
        )
        for rank, (head, metrics) in enumerate(scored, 1):
            version = ModelVersion.objects.create(
                name=f"learned-run{run.pk}-{rank}",
                backend=Backend.LEARNED,
                params={
                    "features": features.features_version(),
                    "heads": {**{a: h.to_dict() for a, h in others.items()}, attribute: head.to_dict()},
                    "trained_on": {"export_id": export.pk, "snapshot_at": export.snapshot_at.isoformat()},
                },
                status=ModelVersion.Status.CANDIDATE,
                metrics={
                    "training_run_id": run.pk,
                    "export_id": export.pk,
                    "attribute": attribute,
                    "test": _summary(metrics),
                },
                notes=(
                    f"Training run #{run.pk} on export #{export.pk}, rank {rank}: {attribute} head on "
                    f"{head.feature_set}, C={head.metrics.get('c')}, temperature {head.temperature:.2f}"
                ),
            )
            Evaluation.objects.update_or_create(
                export=export, model_version=version, defaults=_evaluation_fields(metrics, export)
            )
            results.append(
                {
                    "name": version.name,
                    "model_version_id": version.pk,
                    "attribute": attribute,
                    "feature_set": head.feature_set,
                    "c": head.metrics.get("c"),
                    "temperature": round(head.temperature, 4),
                    "train_size": len(train.shas),
                    "test": _summary(metrics),
                    "beats_active": beats(metrics, active),
                }
            )
        serving_row = {"active": serving.name, "backend": serving.backend, "test": _summary(active)}
        if serving.backend != Backend.LEARNED:
            serving_row["note"] = "the serving backend is not 'learned': a promoted candidate serves once it is"
        results.append(serving_row)
    if run.promote_if_better and results[0]["beats_active"]:
        promoted = model_promote(model_version_id=results[0]["model_version_id"])
    return results, promoted


def _summary(metrics: dict) -> dict:
    keys = ("n", "accuracy", "balanced_accuracy", "ece", "nll")
    return {k: (round(metrics[k], 4) if isinstance(metrics.get(k), float) else metrics.get(k)) for k in keys}


def _evaluation_fields(metrics: dict, export: DatasetExport) -> dict:
    return {
        "status": JobStatus.DONE,
        "progress": 100,
        "metrics": {**metrics, "export_id": export.pk},
        "error": "",
        "finished_at": timezone.now(),
    }
