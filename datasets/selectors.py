"""Reads of the Models page that need care: drift of the serving model on ground truth newer than its
training data, in one query whatever the number of labels."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, F, OuterRef, Q, Subquery

from classification.models import GroundTruth, ModelVersion, Prediction


def _trained_until(version: ModelVersion) -> datetime | None:
    stamp = ((version.params or {}).get("trained_on") or {}).get("snapshot_at")
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def drift_of(version: ModelVersion | None) -> list[dict]:
    """Per attribute: the version's accuracy on ground truth recorded after its training snapshot ("newer")
    beside ground truth up to it ("older"), judged on the predictions that version made, and the change.

    Advertiser fixes are left out (they hold for one advertiser only). A version with no training snapshot
    (builtin, shipped default heads) has only "newer": all ground truth is newer than what it was built from.
    One query.
    """
    if version is None:
        return []
    since = _trained_until(version)
    predicted = Prediction.objects.filter(
        image=OuterRef("image"), attribute=OuterRef("attribute"), model_version=version
    ).values("value")[:1]
    newer = Q(created_at__gt=since) if since else Q()
    older = Q(created_at__lte=since) if since else Q(pk__in=[])
    right = Q(value=F("predicted"))
    rows = (
        GroundTruth.objects.exclude(source=GroundTruth.Source.ADVERTISER_FIX)
        .annotate(predicted=Subquery(predicted))
        .exclude(predicted=None)
        .values("attribute")
        .annotate(
            n_newer=Count("pk", filter=newer),
            right_newer=Count("pk", filter=newer & right),
            n_older=Count("pk", filter=older),
            right_older=Count("pk", filter=older & right),
        )
        .order_by("attribute")
    )
    result = []
    for row in rows:
        newer_accuracy = row["right_newer"] / row["n_newer"] if row["n_newer"] else None
        older_accuracy = row["right_older"] / row["n_older"] if row["n_older"] else None
        change = newer_accuracy - older_accuracy if None not in (newer_accuracy, older_accuracy) else None
        result.append(
            {
                "version": version,
                "attribute": row["attribute"],
                "since": since,
                "newer": {"n": row["n_newer"], "accuracy": newer_accuracy},
                "older": {"n": row["n_older"], "accuracy": older_accuracy},
                "change": change,
            }
        )
    return result
