"""Retraining the builtin classifier without downtime: a parameter search on an export's train split, the
best settings stored as candidate versions and evaluated on its test split, and promotion of one of them,
which re-classifies older predictions in the background while the service keeps answering."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from classification import evaluation
from classification.export import job_claim
from classification.models import Backend, DatasetExport, JobStatus, ModelVersion, ParameterSearch, Prediction
from classification.vocabulary import Attribute
from core.outbox import enqueue_on_commit

# The thresholds the search varies, per attribute: decision thresholds of BuiltinClassifier, all shares in
# [0, 1]. Measurement parameters (analysis size, tone bits…) stay as they are, so each picture is measured
# once per search whatever the number of settings.
SEARCH_SPACE: dict[str, tuple[str, ...]] = {
    Attribute.IMAGE_TYPE: (
        "stock_min_concentration",
        "stock_min_white_border",
        "placeholder_max_foreground",
        "placeholder_min_concentration",
    ),
    Attribute.COLOR: ("color_min_foreground",),
}
FACTORS = (0.8, 1.25, 0.9, 1.1, 0.7, 1.4)
RECLASSIFY_CHUNK = 200
logger = logging.getLogger(__name__)
PROBE_PICTURES = 5  # pictures on which a setting's own measures are compared with the shared ones


class TrainingError(ValueError):
    """A search or promotion that cannot be done as asked; the message says why."""


def builtin_defaults() -> dict:
    """The builtin classifier's hand-set thresholds: the centre of every search."""
    from classification.classifiers.builtin import BuiltinClassifier

    return dict(BuiltinClassifier.DEFAULT_PARAMS)


def active_version(*, backend: str = Backend.BUILTIN) -> ModelVersion | None:
    """The backend's active version, if any."""
    return ModelVersion.objects.filter(backend=backend, status=ModelVersion.Status.ACTIVE).first()


def _clip(key: str, value: float) -> float | int:
    if key == "white_level":
        return int(max(128, min(255, round(value))))
    return round(max(0.0, min(1.0, value)), 4)


def parameter_settings(
    *, base: dict, attribute: str, count: int, seed: int = 0, reference: dict | None = None
) -> list[dict]:
    """``count`` distinct settings: ``base`` (the active version's) first, then the ``reference`` (the builtin
    defaults) when it differs, each threshold of the reference moved alone, then seeded mixes around it.

    Centring on the reference, not on the active version, lets a search recover from a bad promotion.
    """
    centre = reference if reference is not None else base
    keys = [k for k in SEARCH_SPACE.get(attribute, ()) if k in centre]
    if not keys:
        raise TrainingError(f"the builtin classifier has no parameters to search for {attribute}")
    settings: list[dict] = []
    seen: set[tuple] = set()

    def add(candidate: dict) -> None:
        key = tuple(sorted(candidate.items()))
        if key not in seen and len(settings) < count:
            seen.add(key)
            settings.append(candidate)

    add(dict(base))
    add({**base, **{k: centre[k] for k in keys}})
    for factor in FACTORS:
        for k in keys:
            add({**base, **{j: centre[j] for j in keys}, k: _clip(k, centre[k] * factor)})
    rng = random.Random(f"spotcheck-search:{attribute}:{seed}")  # a seeded generator: the same search twice
    for _ in range(50 * count):
        if len(settings) >= count:
            break
        add({**base, **{k: _clip(k, centre[k] * rng.uniform(0.6, 1.5)) for k in keys}})
    return settings


def _settings_scorers(settings: list[dict], attribute: str) -> dict[int, object]:
    """picture → value functions, one per setting, sharing one measurement of each picture where valid."""
    from classification.classifiers import classifier_for

    classifiers = [
        classifier_for(ModelVersion(name=f"search-{i}", backend=Backend.BUILTIN, params=s))
        for i, s in enumerate(settings)
    ]
    measure = getattr(type(classifiers[0]), "measure", None)
    shared = {"picture": None, "measures": None, "seen": 0}
    own_measures = set()  # settings whose measures turned out to differ: they measure for themselves

    def shared_measures(picture):
        if shared["picture"] is not picture:
            shared["picture"], shared["measures"] = picture, measure(classifiers[0], picture)
            shared["seen"] += 1
        return shared["measures"]

    def scorer(i: int):
        classifier = classifiers[i]

        def run(picture) -> str:
            if measure is not None and i not in own_measures:
                measures = shared_measures(picture)
                # A setting that changes what is measured would be scored wrongly on shared measures.
                if i and shared["seen"] <= PROBE_PICTURES and measure(classifier, picture) != measures:
                    own_measures.add(i)
            if measure is not None and i not in own_measures:
                classifier.measure = lambda _picture, m=shared["measures"]: m
            else:
                classifier.__dict__.pop("measure", None)
            value, _ = classifier.classify(picture).get(attribute, (None, None))
            return evaluation.predicted_value(attribute, value)

        return run

    return {i: scorer(i) for i in range(len(settings))}


def _changes(changed: dict) -> str:
    if not changed:
        return "same parameters as the active version"
    return "changed " + ", ".join(f"{k}={v}" for k, v in changed.items())


def _summary(metrics: dict) -> dict:
    return {k: metrics.get(k) for k in ("n", "accuracy", "balanced_accuracy")}


@transaction.atomic
def search_request(
    *,
    export: DatasetExport,
    settings_count: int = 8,
    keep: int = 4,
    user: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> ParameterSearch:
    """Queue a parameter search on an export (train split for the search, test split for the candidates)."""
    from classification.tasks.datasets import parameter_search_task

    if export.status != JobStatus.DONE:
        raise TrainingError(f"export #{export.pk} is not finished")
    if export.attribute not in SEARCH_SPACE:
        raise TrainingError(f"the builtin classifier does not produce {export.attribute}")
    if settings_count < 4:
        raise TrainingError("try at least 4 parameter settings")
    if not 1 <= keep <= settings_count:
        raise TrainingError("keep between 1 and the number of settings tried")
    search = ParameterSearch.objects.create(
        export=export,
        settings_count=settings_count,
        keep=keep,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    if enqueue:
        enqueue_on_commit(parameter_search_task, search.pk)
    return search


def search_run(*, search_id: int) -> ParameterSearch:
    """Score every setting on the train split, keep the best as candidates, evaluate them (and the active
    version) on the test split. A finished search is left alone; an interrupted one starts over."""
    search = ParameterSearch.objects.select_related("export").get(pk=search_id)
    if search.status == JobStatus.DONE:
        return search
    if not job_claim(model=ParameterSearch, pk=search.pk):
        return search
    # Candidates of an interrupted earlier run of this search (never promoted: still candidates) go.
    ModelVersion.objects.filter(
        name__startswith=f"builtin-search{search.pk}-", status=ModelVersion.Status.CANDIDATE
    ).delete()
    try:
        results = _search(search)
    except Exception as exc:
        ParameterSearch.objects.filter(pk=search.pk).update(
            status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
        raise
    ParameterSearch.objects.filter(pk=search.pk).update(
        status=JobStatus.DONE, progress=100, results=results, finished_at=timezone.now()
    )
    search.refresh_from_db()
    return search


def _search(search: ParameterSearch) -> list[dict]:
    export = search.export
    attribute = export.attribute
    active = active_version()
    defaults = builtin_defaults()
    base = {**defaults, **(active.params if active else {})}
    settings = parameter_settings(
        base=base, attribute=attribute, count=search.settings_count, seed=search.pk, reference=defaults
    )
    total = max(evaluation.split_size(export=export, split="train"), 1)
    last = [0.0]

    def progress(done: int) -> None:
        if time.monotonic() - last[0] >= 1.0:
            ParameterSearch.objects.filter(pk=search.pk).update(progress=min(70, int(done * 70 / total)))
            last[0] = time.monotonic()

    train = evaluation.evaluate_samples(
        attribute=attribute,
        items=evaluation.samples(export=export, split="train"),
        models=_settings_scorers(settings, attribute),
        on_progress=progress,
    )

    def distance(i: int) -> int:
        return sum(settings[i][k] != base[k] for k in base)

    ranked = sorted(
        range(len(settings)),
        key=lambda i: (-(train[i]["accuracy"] or 0), -(train[i]["balanced_accuracy"] or 0), distance(i), i),
    )
    candidates: list[ModelVersion] = []
    with transaction.atomic():
        for rank, i in enumerate(ranked[: search.keep], 1):
            changed = {k: settings[i][k] for k in sorted(settings[i]) if settings[i][k] != base[k]}
            candidates.append(
                ModelVersion.objects.create(
                    name=f"builtin-search{search.pk}-{rank}",
                    backend=Backend.BUILTIN,
                    params=settings[i],
                    status=ModelVersion.Status.CANDIDATE,
                    metrics={"search_id": search.pk, "export_id": export.pk, "train": _summary(train[i])},
                    notes=f"Search #{search.pk} on export #{export.pk}, rank {rank}; {_changes(changed)}",
                )
            )
    ParameterSearch.objects.filter(pk=search.pk).update(progress=75)

    versions = [*candidates, *([active] if active else [])]
    evaluations = evaluation.evaluation_request(export=export, model_versions=versions, enqueue=False)
    evaluation.evaluation_run(evaluation_ids=[e.pk for e in evaluations])
    tested = {e.model_version_id: e.metrics for e in export.evaluations.filter(model_version__in=versions)}
    for version in candidates:
        version.metrics = {**version.metrics, "test": _summary(tested.get(version.pk, {}))}
        version.save(update_fields=["metrics"])

    results = []
    for i in ranked:
        kept = next((v for v in candidates if v.params == settings[i]), None)
        results.append(
            {
                "params": {k: settings[i][k] for k in SEARCH_SPACE[attribute] if k in settings[i]},
                "train": _summary(train[i]),
                "test": _summary(tested.get(kept.pk, {})) if kept else None,
                "model_version_id": kept.pk if kept else None,
                "name": kept.name if kept else None,
            }
        )
    if active:
        results.append({"active": active.name, "test": _summary(tested.get(active.pk, {}))})
    return results


def model_promote(*, model_version_id: int, enqueue: bool = True) -> ModelVersion:
    """Make a version the active one of its backend in one transaction, then refresh older predictions in
    the background. Fixes and ground truth are never touched: only predictions are re-computed."""
    from classification.tasks.datasets import reclassify_plan_task

    backend = ModelVersion.objects.values_list("backend", flat=True).get(pk=model_version_id)
    with transaction.atomic():
        # Lock every version of the backend, in id order: concurrent promotions queue up here, and each then
        # reads the active version as the previous one left it (locking only the active row would let a
        # waiting promotion miss the version activated meanwhile and trip the one-active constraint).
        list(ModelVersion.objects.select_for_update().filter(backend=backend).order_by("pk").values_list("pk"))
        version = ModelVersion.objects.get(pk=model_version_id)
        if version.status == ModelVersion.Status.ACTIVE:
            return version
        ModelVersion.objects.filter(backend=backend, status=ModelVersion.Status.ACTIVE).update(
            status=ModelVersion.Status.RETIRED
        )
        version.status = ModelVersion.Status.ACTIVE
        version.promoted_at = timezone.now()
        version.save(update_fields=["status", "promoted_at"])
        if enqueue:
            enqueue_on_commit(reclassify_plan_task, version.pk)
    return version


def outdated_image_ids(*, model_version: ModelVersion, after: int = 0, limit: int = RECLASSIFY_CHUNK) -> list[int]:
    """Up to ``limit`` ids (above ``after``, ascending) of pictures with a prediction from another version of
    the same backend. Keyset pagination: no cursor stays open while the pictures are being rewritten."""
    return list(
        Prediction.objects.filter(model_version__backend=model_version.backend, image_id__gt=after)
        .exclude(model_version=model_version)
        .order_by("image_id")
        .values_list("image_id", flat=True)
        .distinct()[:limit]
    )


def reclassify_plan(*, model_version_id: int, chunk_size: int = RECLASSIFY_CHUNK) -> int:
    """Enqueue chunks of outdated pictures for re-classification by the (still) active version."""
    from classification.tasks.datasets import reclassify_chunk_task

    version = ModelVersion.objects.get(pk=model_version_id)
    if version.status != ModelVersion.Status.ACTIVE:
        return 0  # a newer promotion planned its own
    planned, last = 0, 0
    while chunk := outdated_image_ids(model_version=version, after=last, limit=chunk_size):
        reclassify_chunk_task.delay(version.pk, chunk)
        planned += len(chunk)
        last = chunk[-1]
    return planned


def reclassify_chunk(*, model_version_id: int, image_ids: Sequence[int]) -> int:
    """Re-classify pictures with the active version; stops if it is no longer active. Returns how many changed.

    A picture whose stored bytes the backend refuses for good is logged and skipped; a transient backend
    error propagates so the task retries the chunk (pictures already done are then skipped)."""
    from classification.classifiers import ClassifierError
    from classification.imaging import ImageRejected
    from classification.services import image_reclassify

    version = ModelVersion.objects.get(pk=model_version_id)
    if version.status != ModelVersion.Status.ACTIVE:
        return 0
    changed = 0
    for image_id in image_ids:
        try:
            changed += bool(image_reclassify(image_id=image_id, model_version_id=version.pk))
        except ClassifierError as exc:
            if exc.transient:
                raise
            logger.warning("reclassify: %s refused picture %s: %s", version.name, image_id, exc)
        except ImageRejected as exc:
            logger.warning("reclassify: picture %s cannot be decoded: %s", image_id, exc)
    return changed
