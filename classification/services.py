"""Writes other apps hand to classification: ground truth from people, and manual fixes."""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from classification.models import GroundTruth, Image
from classification.vocabulary import is_valid


def ground_truth_record(
    *,
    image: Image,
    attribute: str,
    value: str,
    source: str,
    advertiser: str = "",
    reference: str = "",
    url: str = "",
    votes: int | None = None,
    margin: int | None = None,
    user: AbstractBaseUser | None = None,
    at: datetime | None = None,
) -> GroundTruth:
    """Append one ground-truth label. Raises ValueError for a value outside the attribute's vocabulary."""
    if not is_valid(attribute, value):
        raise ValueError(f"{value!r} is not a valid {attribute}")
    if source not in GroundTruth.Source.values:
        raise ValueError(f"unknown ground-truth source {source!r}")
    if source == GroundTruth.Source.ADVERTISER_FIX and not advertiser:
        raise ValueError("an advertiser fix must name its advertiser")
    return GroundTruth.objects.create(
        image=image,
        attribute=attribute,
        value=value,
        source=source,
        advertiser=advertiser,
        reference=reference,
        url=url,
        votes=votes,
        margin=margin,
        created_by=user if user is not None and user.is_authenticated else None,
        created_at=at or timezone.now(),
    )


@transaction.atomic
def fix_record(
    *,
    image: Image,
    attribute: str,
    value: str,
    user: AbstractBaseUser | None,
    advertiser: str,
    staff: bool,
    reference: str = "",
    url: str = "",
    at: datetime | None = None,
) -> GroundTruth:
    """Record a manual fix as ground truth: global when ``staff``, else scoped to ``advertiser``.

    The caller pushes it to the cache afterwards (outbox); the database row is the source of truth.
    """
    return ground_truth_record(
        image=image,
        attribute=attribute,
        value=value,
        source=GroundTruth.Source.STAFF_FIX if staff else GroundTruth.Source.ADVERTISER_FIX,
        advertiser=advertiser,
        reference=reference,
        url=url,
        user=user,
        at=at,
    )
