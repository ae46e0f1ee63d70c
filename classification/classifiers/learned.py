"""The learned classifier: the pretrained backbone's embedding + the builtin measures, then one calibrated
head per attribute (image type, colour, and any labelled attribute such as banner or position).

A model version's ``params`` hold ``features`` (the feature version its heads were trained on) and ``heads``
(attribute → ``Head.to_dict()``). Without ``heads`` it serves the default heads shipped in
``classification/default_heads.json`` (built by ``python -m classification.default_heads``). An ML attribute
with no head falls back to the builtin classifier. Serving is numpy + ONNX Runtime; no scikit-learn.

The picture's SHA-256, when the caller put it in ``picture.info["sha256"]``, keys the feature cache, so a
picture already embedded (classified before, or reclassified by a new version) skips the backbone.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from PIL import Image

from classification import features
from classification.classifiers.base import ClassifierError, Values
from classification.heads import Head
from classification.models import ModelVersion
from classification.vocabulary import ML_ATTRIBUTES, Attribute, ImageType

DEFAULT_HEADS_PATH = Path(__file__).resolve().parent.parent / "default_heads.json"


@lru_cache(maxsize=1)
def default_heads() -> dict:
    """The shipped default heads document: {"features": ..., "heads": {attribute: head dict}, ...}."""
    return json.loads(DEFAULT_HEADS_PATH.read_text())


def default_params() -> dict:
    """A new learned version's params: the default heads, by reference (the file ships with the code)."""
    return {"features": default_heads()["features"], "heads_source": "default"}


def heads_of(params: dict) -> tuple[str, dict[str, Head]]:
    """The feature version and parsed heads a version's params describe. Raises ValueError."""
    if "heads" in params:
        document = params
    elif params.get("heads_source", "default") == "default":
        document = default_heads()
    else:
        raise ValueError(f"unknown heads source {params.get('heads_source')!r}")
    heads = {str(attribute): Head.from_dict(head) for attribute, head in (document.get("heads") or {}).items()}
    return str(document.get("features", "")), heads


class LearnedClassifier:
    def __init__(self, model_version: ModelVersion, *, cache_features: bool = True) -> None:
        self.model_version = model_version
        self.cache_features = cache_features
        try:
            self.features_version, self.heads = heads_of(model_version.params or {})
        except (ValueError, KeyError, TypeError) as exc:
            message = f"model version {model_version.name}: unusable heads ({exc})"
            raise ClassifierError(message, transient=False) from exc

    def classify(self, picture: Image.Image) -> Values:
        if self.heads and self.features_version != features.features_version():
            raise ClassifierError(
                f"model version {self.model_version.name} was trained on features {self.features_version}, "
                f"this installation computes {features.features_version()}: retrain it",
                transient=False,
            )
        sha256 = picture.info.get("sha256") if self.cache_features else None
        vector = features.features_for(picture, sha256=sha256)[None, :]
        values: Values = {attribute: head.predict(vector)[0] for attribute, head in self.heads.items()}
        missing = [a for a in ML_ATTRIBUTES if a not in values]
        if missing:
            from classification.classifiers.builtin import BuiltinClassifier

            fallback = BuiltinClassifier(ModelVersion(name="fallback", backend="builtin", params={})).classify(picture)
            values.update({a: fallback.get(a, (None, None)) for a in missing})
        if values.get(Attribute.IMAGE_TYPE, (None, None))[0] == ImageType.PLACEHOLDER:
            values[Attribute.COLOR] = (None, None)  # no vehicle, no colour to name
        return {a: (value, round(score, 4) if score is not None else None) for a, (value, score) in values.items()}
