"""Reads of the Models page that need care: drift of the active models on ground truth newer than their
training data, a bounded number of queries whatever the number of labels."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, F, OuterRef, Q, Subquery

from classification.models import GroundTruth, ModelVersion, Prediction
from classification.vocabulary import ML_ATTRIBUTES


def _trained_until(version: ModelVersion) -> datetime | None:
    stamp = ((version.params or {}).get("trained_on") or {}).get("snapshot_at")
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def _accuracy(rows) -> dict:
    counts = rows.aggregate(n=Count("pk"), correct=Count("pk", filter=Q(value=F("predicted"))))
    n = counts["n"] or 0
    return {"n": n, "accuracy": counts["correct"] / n if n else None}


def drift_of_active() -> list[dict]:
    """Per active version and attribute: its accuracy on ground truth recorded after its training snapshot
    ("newer") beside ground truth up to it ("older"), judged on the predictions that version made.

    Advertiser fixes are left out (they hold for one advertiser only). A version with no training snapshot
    (builtin, shipped defaults) has only "newer": all ground truth is newer than what it was built from.
    Two queries per (version, attribute).
    """
    result = []
    for version in ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).order_by("backend"):
        heads = (version.params or {}).get("heads") or {}
        attributes = list(dict.fromkeys([*ML_ATTRIBUTES, *heads])) if heads else list(ML_ATTRIBUTES)
        since = _trained_until(version)
        for attribute in attributes:
            predicted = Prediction.objects.filter(
                image=OuterRef("image"), attribute=attribute, model_version=version
            ).values("value")[:1]
            rows = (
                GroundTruth.objects.filter(attribute=attribute)
                .exclude(source=GroundTruth.Source.ADVERTISER_FIX)
                .annotate(predicted=Subquery(predicted))
                .exclude(predicted=None)
            )
            newer = _accuracy(rows.filter(created_at__gt=since) if since else rows)
            older = _accuracy(rows.filter(created_at__lte=since)) if since else {"n": 0, "accuracy": None}
            change = (
                newer["accuracy"] - older["accuracy"]
                if newer["accuracy"] is not None and older["accuracy"] is not None
                else None
            )
            result.append(
                {
                    "version": version,
                    "attribute": attribute,
                    "since": since,
                    "newer": newer,
                    "older": older,
                    "change": change,
                }
            )
    return result
