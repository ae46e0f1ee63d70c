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
