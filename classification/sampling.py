"""Read-only picture selectors other apps use to pick pictures (e.g. to fill a labeling campaign).

They return picture ids only, so callers never query classification's tables themselves.
"""

import random

from classification.models import Image, Prediction
from classification.vocabulary import VALUES


def ids_sample(ids: list[int], *, limit: int | None, seed: int | None) -> list[int]:
    """A random subset of ``limit`` ids (reproducible with ``seed``); all of them, in order, otherwise."""
    if seed is not None or limit is not None:
        random.Random(seed).shuffle(ids)
    return ids[:limit] if limit is not None else ids


def images_matching(
    *,
    attribute: str,
    value: str | None = None,
    score_below: float | None = None,
    limit: int | None = None,
    seed: int | None = None,
) -> list[int]:
    """Ids of pictures whose classifier output for ``attribute`` matches: the value it said (``""`` for
    "said nothing"), and/or a score below ``score_below``. A random subset of ``limit`` when given
    (reproducible with ``seed``); ascending ids otherwise."""
    if attribute not in VALUES:
        raise ValueError(f"unknown attribute {attribute!r}")
    if value is None and score_below is None:
        raise ValueError("give a value, a score threshold, or both")
    rows = Prediction.objects.filter(attribute=attribute)
    if value is not None:
        rows = rows.filter(value=value)
    if score_below is not None:
        rows = rows.filter(score__lt=score_below)
    ids = list(rows.order_by("image_id").values_list("image_id", flat=True))
    return ids_sample(ids, limit=limit, seed=seed)


def images_random(*, limit: int, seed: int | None = None, exclude_ids: set[int] | None = None) -> list[int]:
    """Ids of ``limit`` pictures chosen uniformly at random (reproducible with ``seed``)."""
    if limit < 0:
        raise ValueError("limit cannot be negative")
    ids = list(Image.objects.order_by("id").values_list("id", flat=True))
    if exclude_ids:
        ids = [i for i in ids if i not in exclude_ids]
    return ids_sample(ids, limit=limit, seed=seed)


def images_existing(*, image_ids: list[int]) -> list[int]:
    """The subset of ``image_ids`` that name stored pictures, in the given order."""
    found = set(Image.objects.filter(id__in=image_ids).values_list("id", flat=True))
    return [i for i in image_ids if i in found]


def images_least_sure(*, attribute: str, limit: int, exclude_ids: set[int] | None = None) -> list[int]:
    """Ids of the ``limit`` pictures whose current prediction for ``attribute`` has the lowest calibrated
    score (the model's least sure first: active learning), leaving out pictures that already have ground
    truth for it and ``exclude_ids``. Raises ValueError when no picture has a scored prediction for it."""
    if attribute not in VALUES:
        raise ValueError(f"unknown attribute {attribute!r}")
    if limit < 1:
        raise ValueError("ask for at least one picture")
    rows = Prediction.objects.filter(attribute=attribute, score__isnull=False)
    if not rows.exists():
        raise ValueError(f"the model gives no scored {attribute} yet: fill at random first and train a head")
    unlabelled = rows.exclude(image__ground_truths__attribute=attribute).order_by("score", "image_id")
    exclude_ids = exclude_ids or set()
    chosen: list[int] = []
    for image_id in unlabelled.values_list("image_id", flat=True).iterator(chunk_size=2000):
        if image_id not in exclude_ids:
            chosen.append(image_id)
            if len(chosen) >= limit:
                break
    return chosen
