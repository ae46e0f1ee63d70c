"""HTML pages for admins: dataset exports (/datasets/) and model quality (/models/). Anyone else gets 404."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from classification.models import ModelVersion
from classification.promotion import model_promote
from core import permissions
from core.errors import refusal_as_message
from core.jobs import JobStatus
from datasets import evaluation, selectors, services
from datasets.export import file_response
from datasets.forms import EvaluateForm, ExportForm, ImportForm, SearchForm, TrainForm
from datasets.models import DatasetExport, DatasetImport, Evaluation, ParameterSearch, TrainingRun

RECENT = 30


# The pages do not exist for non-admins (404, not 403: we do not confirm what is there).
admin_only = permissions.page_requires(*permissions.ADMIN, hidden=True)


def _bars(counts: dict) -> list[dict]:
    """Rows of the per-class bar chart: train and test counts as percentages of the largest class."""
    train, test = counts.get("train", {}), counts.get("test", {})
    labels = list(dict.fromkeys([*train, *test]))
    largest = max((train.get(c, 0) + test.get(c, 0) for c in labels), default=0) or 1
    return [
        {
            "label": c,
            "train": train.get(c, 0),
            "test": test.get(c, 0),
            "train_pct": round(train.get(c, 0) * 100 / largest, 1),
            "test_pct": round(test.get(c, 0) * 100 / largest, 1),
        }
        for c in labels
    ]


def _params_display(export: DatasetExport) -> list[tuple[str, str]]:
    rows = []
    for key, value in {**export.params, "manifest_only": export.manifest_only}.items():
        if isinstance(value, list):
            value = ", ".join(value) or "all"
        rows.append((key.replace("_", " "), "—" if value is None else str(value)))
    return rows


def _busy(statuses) -> bool:
    return any(s in (JobStatus.QUEUED, JobStatus.RUNNING) for s in statuses)


@admin_only
def datasets(request):
    if request.method == "POST":
        form = ExportForm(request.POST)
        if form.is_valid():
            export = services.export_request(
                params=form.cleaned_data["params"], manifest_only=form.cleaned_data["manifest_only"], user=request.user
            )
            messages.success(request, f"Export #{export.pk} queued.")
            return redirect("datasets:datasets")
    else:
        form = ExportForm()
    exports = list(DatasetExport.objects.select_related("created_by")[:RECENT])
    for export in exports:
        export.bars = _bars(export.counts)
    return render(
        request,
        "datasets/datasets.html",
        {"form": form, "exports": exports, "refresh": _busy(e.status for e in exports)},
    )


@admin_only
def dataset_detail(request, pk: int):
    export = get_object_or_404(DatasetExport.objects.select_related("created_by"), pk=pk)
    return render(
        request,
        "datasets/dataset_detail.html",
        {
            "export": export,
            "bars": _bars(export.counts),
            "params": _params_display(export),
            "excluded": [(n, k.replace("_", " ")) for k, n in export.summary.get("excluded", {}).items() if n],
            "refresh": _busy([export.status]),
            "evaluations": evaluation.evaluations_side_by_side(export=export),
        },
    )


@admin_only
def dataset_download(request, pk: int):
    return file_response(export=get_object_or_404(DatasetExport, pk=pk, status=JobStatus.DONE))


@admin_only
def dataset_manifest(request, pk: int):
    return file_response(export=get_object_or_404(DatasetExport, pk=pk, status=JobStatus.DONE), manifest=True)


@admin_only
def models(request):
    versions = list(ModelVersion.objects.order_by("backend", "status", "-created_at"))
    latest: dict[int, Evaluation] = {}
    for done in Evaluation.objects.filter(status=JobStatus.DONE).order_by("finished_at", "pk"):
        latest[done.model_version_id] = done  # the newest wins
    for version in versions:
        version.latest_evaluation = latest.get(version.pk)
    searches = list(ParameterSearch.objects.select_related("export")[:10])
    runs = list(TrainingRun.objects.select_related("export", "promoted")[:10])
    return render(
        request,
        "datasets/models.html",
        {
            "versions": versions,
            "searches": searches,
            "evaluate_form": EvaluateForm(initial={"versions": evaluation.evaluation_versions_default()}),
            "search_form": SearchForm(),
            "train_form": TrainForm(),
            "runs": runs,
            "drift": selectors.drift_of(_serving(versions)),
            "advertiser_accuracy": _advertiser_accuracy(versions),
            "recent_exports": DatasetExport.objects.filter(status=JobStatus.DONE, evaluations__isnull=False)
            .distinct()
            .order_by("-created_at")[:10],
            "refresh": _busy([*(s.status for s in searches), *(r.status for r in runs)]),
        },
    )


def _serving(versions) -> ModelVersion | None:
    """The active version of the configured backend: the one answering requests."""
    backend = settings.SPOTCHECK_CLASSIFIER_BACKEND
    return next((v for v in versions if v.backend == backend and v.status == ModelVersion.Status.ACTIVE), None)


def _advertiser_accuracy(versions) -> list[dict]:
    """Per-advertiser accuracy of the active versions' latest evaluations, worst first (seed 002's "local
    accuracy": a model right on average can be wrong for one dealer)."""
    rows = []
    for version in versions:
        done = getattr(version, "latest_evaluation", None)
        if version.status != ModelVersion.Status.ACTIVE or done is None:
            continue
        for slug, cell in (done.metrics.get("advertisers") or {}).items():
            rows.append({"version": version.name, "slug": slug, "n": cell["n"], "accuracy": cell["accuracy"]})
    return sorted(rows, key=lambda row: (row["accuracy"], -row["n"]))[:50]


@admin_only
@require_POST
@refusal_as_message("datasets:models")
def train(request):
    form = TrainForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose an attribute and between 4 and 8 candidates.")
        return redirect("datasets:models")
    run = services.training_request(
        attribute=form.cleaned_data["attribute"],
        candidates=form.cleaned_data["candidates"],
        promote_if_better=form.cleaned_data["promote_if_better"],
        user=request.user,
    )
    messages.success(request, f"Training run #{run.pk} queued.")
    return redirect("datasets:models")


@admin_only
def dataset_import(request):
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        if form.is_valid():
            job = services.import_request(
                attribute=form.cleaned_data["attribute"], upload=form.cleaned_data["file"], user=request.user
            )
            messages.success(request, f"Import #{job.pk} queued.")
            return redirect("datasets:import")
    else:
        form = ImportForm()
    imports = list(DatasetImport.objects.select_related("created_by")[:RECENT])
    return render(
        request,
        "datasets/import.html",
        {"form": form, "imports": imports, "refresh": _busy(i.status for i in imports)},
    )


@admin_only
@require_POST
@refusal_as_message("datasets:models")
def evaluate(request):
    form = EvaluateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a finished export and at least one model version.")
        return redirect("datasets:models")
    services.evaluation_request(export=form.cleaned_data["export"], model_versions=form.cleaned_data["versions"])
    return redirect("datasets:evaluation", pk=form.cleaned_data["export"].pk)


@admin_only
def evaluation_page(request, pk: int):
    export = get_object_or_404(DatasetExport, pk=pk)
    rows = evaluation.evaluations_side_by_side(export=export)
    return render(
        request,
        "datasets/evaluation.html",
        {"export": export, "evaluations": rows, "table": _comparison(rows), "refresh": _busy(e.status for e in rows)},
    )


def _comparison(rows) -> dict:
    """Per-class precision/recall and per-advertiser accuracy laid out with one column per version."""
    done = [e for e in rows if e.status == JobStatus.DONE]
    classes = list(dict.fromkeys(c for e in done for c in e.metrics.get("classes", {})))
    advertisers = sorted({a for e in done for a in e.metrics.get("advertisers", {})})
    matrices = []
    for e in done:
        confusion = e.metrics.get("confusion", {"labels": [], "matrix": []})
        largest = max((v for row in confusion["matrix"] for v in row), default=0) or 1
        cells = [
            [{"n": v, "alpha": round(0.08 + 0.8 * v / largest, 2) if v else 0, "hit": i == j} for j, v in enumerate(r)]
            for i, r in enumerate(confusion["matrix"])
        ]
        matrices.append(
            {"evaluation": e, "labels": confusion["labels"], "rows": list(zip(confusion["labels"], cells, strict=True))}
        )
    return {
        "done": done,
        "classes": [{"label": c, "cells": [e.metrics["classes"].get(c, {}) for e in done]} for c in classes],
        "advertisers": [{"slug": a, "cells": [e.metrics["advertisers"].get(a) for e in done]} for a in advertisers],
        "matrices": matrices,
    }


@admin_only
@require_POST
@refusal_as_message("datasets:models")
def search(request):
    form = SearchForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a finished export; keep at most as many candidates as settings.")
        return redirect("datasets:models")
    found = services.search_request(
        export=form.cleaned_data["export"],
        settings_count=form.cleaned_data["settings_count"],
        keep=form.cleaned_data["keep"],
        user=request.user,
    )
    messages.success(request, f"Parameter search #{found.pk} queued.")
    return redirect("datasets:models")


@admin_only
@require_POST
def promote(request, pk: int):
    version = get_object_or_404(ModelVersion, pk=pk)
    model_promote(model_version_id=version.pk)
    messages.success(request, f"{version.name} is now active; older predictions are being refreshed.")
    return redirect("datasets:models")
