"""Retraining the builtin classifier: a parameter search on an export's train split, the best settings stored
as candidate versions and evaluated on its test split. Promoting one is classification's business
(classification.promotion); the search only proposes."""

from __future__ import annotations

import random
import time

from django.db import transaction

from classification.models import Backend, ModelVersion
from classification.selectors import model_version_active
from classification.vocabulary import Attribute
from core.errors import ApplicationError
from core.jobs import JobStatus, job_claim, job_run
from datasets import evaluation
from datasets.export import RUN_LEASE_SECONDS
from datasets.models import ParameterSearch

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
PROBE_PICTURES = 5  # pictures on which a setting's own measures are compared with the shared ones


class TrainingError(ApplicationError):
    """A search or promotion that cannot be done as asked; the message says why."""


def builtin_defaults() -> dict:
    """The builtin classifier's hand-set thresholds: the centre of every search."""
    from classification.classifiers.builtin import BuiltinClassifier

    return dict(BuiltinClassifier.DEFAULT_PARAMS)


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


def search_run(*, search_id: int) -> ParameterSearch:
    """Score every setting on the train split, keep the best as candidates, evaluate them (and the active
    version) on the test split. A finished search is left alone; an interrupted one starts over."""
    search = ParameterSearch.objects.select_related("export").get(pk=search_id)
    if search.status == JobStatus.DONE:
        return search
    if not job_claim(model=ParameterSearch, pk=search.pk, lease_seconds=RUN_LEASE_SECONDS):
        return search
    # Candidates of an interrupted earlier run of this search (never promoted: still candidates) go.
    ModelVersion.objects.filter(
        name__startswith=f"builtin-search{search.pk}-", status=ModelVersion.Status.CANDIDATE
    ).delete()
    job_run(
        rows=ParameterSearch.objects.filter(pk=search.pk),
        work=lambda: _search(search),
        done=lambda results: {"results": results},
    )
    search.refresh_from_db()
    return search


def _search(search: ParameterSearch) -> list[dict]:
    export = search.export
    attribute = export.attribute
    active = model_version_active(backend=Backend.BUILTIN)
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
    evaluations = evaluation.evaluations_queue(export=export, model_versions=versions)
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
