"""Reads other apps use: the effective values of many pictures at once, in a fixed number of queries."""

from collections.abc import Iterable

from django.conf import settings
from django.db import connection
from django.db.models import IntegerField, Q
from django.db.models.expressions import RawSQL

from classification.imaging import hamming
from classification.models import GroundTruth, Image, ModelVersion, Prediction
from classification.values import Fix, Resolved, newer, resolve
from classification.vocabulary import ML_ATTRIBUTES


def latest_fixes(*, image_ids: Iterable[int], advertiser: str | None) -> dict[tuple[int, str], dict[str, Fix]]:
    """The newest staff fix and the newest fix by ``advertiser`` per (image, attribute): one query."""
    scope = Q(source=GroundTruth.Source.STAFF_FIX)
    if advertiser:
        scope |= Q(source=GroundTruth.Source.ADVERTISER_FIX, advertiser=advertiser)
    rows = GroundTruth.objects.filter(scope, image_id__in=list(image_ids))
    found: dict[tuple[int, str], dict[str, Fix]] = {}
    for gt in rows.only("id", "image_id", "attribute", "value", "source", "advertiser", "created_by_id", "created_at"):
        fix = Fix(gt.value, gt.source, gt.advertiser, gt.created_by_id, gt.created_at, gt.id)
        slot = found.setdefault((gt.image_id, gt.attribute), {})
        slot[gt.source] = newer(slot.get(gt.source), fix)
    return found


def image_values(
    *, image_ids: Iterable[int], advertiser: str | None = None, attributes: tuple[str, ...] = ML_ATTRIBUTES
) -> dict[int, dict[str, Resolved]]:
    """Effective value of each attribute for each picture as seen by ``advertiser`` (None: staff view).

    Two queries whatever the number of pictures.
    """
    ids = list(image_ids)
    ml: dict[tuple[int, str], tuple[str, float | None]] = {
        (p.image_id, p.attribute): (p.value, p.score)
        for p in Prediction.objects.filter(image_id__in=ids, attribute__in=attributes).only(
            "image_id", "attribute", "value", "score"
        )
    }
    fixes = latest_fixes(image_ids=ids, advertiser=advertiser)
    result: dict[int, dict[str, Resolved]] = {}
    for image_id in ids:
        per_attr = {}
        for attribute in attributes:
            ml_value, ml_score = ml.get((image_id, attribute), ("", None))
            slot = fixes.get((image_id, attribute), {})
            per_attr[attribute] = resolve(
                attribute=attribute,
                ml_value=ml_value or None,
                ml_score=ml_score,
                staff_fix=slot.get(GroundTruth.Source.STAFF_FIX),
                advertiser_fix=slot.get(GroundTruth.Source.ADVERTISER_FIX),
            )
        result[image_id] = per_attr
    return result


def model_version_active(*, backend: str | None = None) -> ModelVersion | None:
    """The active version of ``backend`` (default: the configured classifier backend), if any."""
    backend = backend or settings.SPOTCHECK_CLASSIFIER_BACKEND
    return ModelVersion.objects.filter(backend=backend, status=ModelVersion.Status.ACTIVE).first()


def images_near_duplicate(*, image: Image, max_distance: int | None = None) -> list[Image]:
    """Other pictures whose perceptual hash is within ``max_distance`` bits of ``image``'s (nearest first).

    PostgreSQL computes the distance in SQL; elsewhere the hashes are scanned in chunks in Python.
    """
    if image.phash is None:
        return []
    if max_distance is None:
        max_distance = settings.SPOTCHECK_NEAR_DUPLICATE_DISTANCE
    others = Image.objects.exclude(pk=image.pk).exclude(phash=None)
    if connection.vendor == "postgresql":
        # XOR the signed bigints, read the 64 bits back as a bit string and count the ones.
        distance = RawSQL(
            "bit_count(('x' || lpad(to_hex(\"classification_image\".\"phash\" # %s), 16, '0'))::bit(64))",
            (image.phash,),
            output_field=IntegerField(),
        )
        found = others.annotate(distance=distance).filter(distance__lte=max_distance).order_by("distance", "id")
        return list(found)
    near: list[tuple[int, int]] = []
    for other_id, other_hash in others.values_list("id", "phash").iterator(chunk_size=5000):
        d = hamming(image.phash, other_hash)
        if d <= max_distance:
            near.append((d, other_id))
    near.sort()
    by_id = Image.objects.in_bulk([i for _, i in near])
    result = []
    for d, i in near:
        by_id[i].distance = d
        result.append(by_id[i])
    return result
