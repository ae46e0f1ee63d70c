"""A picture's feature vector for the learned heads, cached per picture and backbone version.

The vector is the backbone's embedding (``classification.embedding``) followed by the builtin classifier's
histogram measures with its fixed default thresholds: tone concentration, white frame, foreground share,
chromatic share and the share of the winning colour; how the centre's excess over its sides splits over the
12 colour names; then its colour and its image type, one-hot. The builtin
stays the zero-data fallback; here it is features the heads can weigh.

``features_for`` reads the ``Embedding`` table first (key: the picture's SHA-256 and ``FEATURES_VERSION``),
so a picture is decoded and run through the backbone once, whatever is retrained later.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from classification import embedding
from classification.vocabulary import Color, ImageType

COLORS = tuple(Color.values)
TYPES = tuple(ImageType.values)
MEASURES = ("concentration", "white_border", "foreground", "chromatic_share", "color_share")
BUILTIN_DIM = len(MEASURES) + 2 * len(COLORS) + len(TYPES)
BUILTIN_VERSION = 2  # bump when the builtin part of the vector changes
PENDING_FEATURES = "spotcheck_pending_features"  # picture.info key of a computed, not yet stored vector
# picture.info key set by a caller that read the cache for a whole batch: the stored vector, or None when
# there is none (then the computed one is left in PENDING_FEATURES for the caller to store with the batch).
READ_FEATURES = "spotcheck_read_features"


def features_version() -> str:
    """The key cached vectors are stored under: backbone version + builtin features version."""
    return f"{embedding.backbone_version()}+b{BUILTIN_VERSION}"


def builtin_features(picture: Image.Image) -> np.ndarray:
    """The builtin classifier's measures and decisions as numbers (float32, BUILTIN_DIM)."""
    from classification.classifiers.builtin import BuiltinClassifier
    from classification.models import ModelVersion

    classifier = BuiltinClassifier(ModelVersion(name="features", backend="builtin", params={}))
    measures = classifier.measure(picture)
    image_type, _ = classifier._image_type(measures)
    out = np.zeros(BUILTIN_DIM, np.float32)
    out[: len(MEASURES)] = [float(measures[m] or 0.0) for m in MEASURES]
    for name, share in measures["color_votes"].items():
        out[len(MEASURES) + COLORS.index(name)] = share
    if measures["color"] in COLORS:
        out[len(MEASURES) + len(COLORS) + COLORS.index(measures["color"])] = 1.0
    out[len(MEASURES) + 2 * len(COLORS) + TYPES.index(image_type)] = 1.0
    return out


def compute(pictures: list[Image.Image]) -> np.ndarray:
    """Feature vectors of decoded pictures (N x (EMBEDDING_DIM + BUILTIN_DIM)), no cache."""
    embedded = embedding.embed(pictures)
    return np.hstack([embedded, np.stack([builtin_features(p) for p in pictures])]).astype(np.float32)


def features_cached(*, sha256s: Iterable[str]) -> dict[str, np.ndarray]:
    """The stored vectors of these pictures for the current version (float32), by SHA-256."""
    from classification.models import Embedding

    version = features_version()
    rows = Embedding.objects.filter(backbone=version, image_sha256__in=list(sha256s)).values_list(
        "image_sha256", "vector"
    )
    return {sha: np.frombuffer(bytes(vector), dtype="<f2").astype(np.float32) for sha, vector in rows}


def features_store(*, vectors: dict[str, np.ndarray]) -> None:
    """Keep vectors (as float16) for the current version; an existing row is left as it is."""
    from classification.models import Embedding

    version = features_version()
    rows = [
        Embedding(image_sha256=sha, backbone=version, vector=np.asarray(v, dtype="<f2").tobytes())
        for sha, v in vectors.items()
    ]
    Embedding.objects.bulk_create(rows, ignore_conflicts=True)  # a concurrent writer stored the same vector


def features_for(picture: Image.Image, *, sha256: str | None) -> np.ndarray:
    """One picture's vector: from the cache when its SHA-256 is given and stored, else computed.

    With ``sha256`` a computed vector is stored at once. Without it (a caller on a pool thread, where the
    database is not touched), or when the caller read the cache for its batch (``picture.info[READ_FEATURES]``),
    nothing is read or written here, and the vector is left in ``picture.info[PENDING_FEATURES]`` for the
    caller to store with ``features_store``. The cached vector is float16; a computed one is rounded the same
    way, so a picture gets the same answer either way.
    """
    if READ_FEATURES in picture.info:
        read = picture.info[READ_FEATURES]
        if read is not None:
            return read
        sha256 = None  # the caller stores the batch's new vectors together
    elif sha256:
        hit = features_cached(sha256s=[sha256]).get(sha256)
        if hit is not None:
            return hit
    vector = compute([picture])[0].astype("<f2")
    if sha256:
        features_store(vectors={sha256: vector})
    else:
        picture.info[PENDING_FEATURES] = vector
    return vector.astype(np.float32)
