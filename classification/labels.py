"""Searchable labels and what backends cost: store what a backend said about a picture (its labels, per model
version, and one call row per picture sent to a backend), find pictures by label, and report a run's calls
and estimated cost (price per 1,000 pictures from the version's params, else the settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, QuerySet, Sum
from django.utils import timezone

from classification.classifiers import Description
from classification.models import BackendCall, Image, ImageLabel, ModelVersion

MAX_LABELS = 50  # per picture and version: the most confident ones (services return up to ~100 tags)


def price_per_1000(version: ModelVersion) -> Decimal:
    """What a thousand pictures sent to this version cost: its ``price_per_1000`` param, else the setting."""
    price = (version.params or {}).get("price_per_1000")
    if price is None:
        price = settings.SPOTCHECK_PRICE_PER_1000.get(version.backend, 0)
    return Decimal(str(price))


def description_record(*, image: Image, description: Description, at: datetime | None = None) -> None:
    """Keep a picture's labels (replacing those the same version gave it before) and its backend calls."""
    descriptions_record(described=[(image, description)], at=at)


def descriptions_record(*, described: list[tuple[Image, Description]], at: datetime | None = None) -> None:
    """``description_record`` for a batch of pictures: one DELETE per labelling version, one INSERT of labels
    and one of calls for the whole batch, not a few statements per picture."""
    at = at or timezone.now()
    relabelled: dict[int, tuple[ModelVersion, list[int]]] = {}
    labels: list[ImageLabel] = []
    calls: list[BackendCall] = []
    for image, description in described:
        version = description.labels_version
        if version is not None and version.pk:
            relabelled.setdefault(version.pk, (version, []))[1].append(image.pk)
            best = sorted(description.labels.items(), key=lambda item: -item[1])[:MAX_LABELS]
            labels += (
                ImageLabel(image=image, model_version=version, name=name[:100], score=score, created_at=at)
                for name, score in best
            )
        calls += (
            BackendCall(
                image=image,
                model_version=called,
                backend=called.backend,
                cost=price_per_1000(called) / 1000,
                created_at=at,
            )
            for called in description.calls
            if called.pk
        )
    for version, image_ids in relabelled.values():
        ImageLabel.objects.filter(image_id__in=image_ids, model_version=version).delete()
    ImageLabel.objects.bulk_create(labels)
    BackendCall.objects.bulk_create(calls)


def normalize_tag(tag: str) -> str:
    return " ".join(tag.strip().lower().split())


def images_tagged(
    *, tag: str, min_score: float = 0.0, model_version: ModelVersion | None = None, queryset: QuerySet | None = None
) -> QuerySet:
    """Pictures some version labelled ``tag`` (case-insensitive) with at least ``min_score``."""
    labels = ImageLabel.objects.filter(image=OuterRef("pk"), name=normalize_tag(tag), score__gte=min_score)
    if model_version is not None:
        labels = labels.filter(model_version=model_version)
    return (queryset if queryset is not None else Image.objects.all()).filter(Exists(labels))


@dataclass
class Usage:
    """Pictures sent to each backend and the estimated cost, for one classification run."""

    pictures: dict[str, int] = field(default_factory=dict)
    cost: Decimal = Decimal(0)

    def as_dict(self) -> dict:
        return {"pictures": dict(self.pictures), "estimated_cost": float(round(self.cost, 6))}

    def line(self) -> str:
        sent = ", ".join(f"{backend} {n}" for backend, n in sorted(self.pictures.items())) or "none"
        return f"pictures sent: {sent}; estimated cost {self.cost:.4f}"


def usage_report(
    *, image_ids: list[int] | QuerySet | None = None, since: datetime, until: datetime | None = None
) -> Usage:
    """The backend calls made from ``since`` (to ``until``), for these pictures (ids, or a query of
    ``image_id`` values) when given."""
    calls = BackendCall.objects.filter(created_at__gte=since)
    if until is not None:
        calls = calls.filter(created_at__lte=until)
    if image_ids is not None:
        calls = calls.filter(image_id__in=image_ids)
    usage = Usage()
    for row in calls.values("backend").annotate(n=Count("id"), cost=Sum("cost")).order_by("backend"):
        usage.pictures[row["backend"]] = row["n"]
        usage.cost += row["cost"] or Decimal(0)
    return usage
