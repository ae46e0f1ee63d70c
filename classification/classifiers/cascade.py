"""The cascade backend: a local model first (builtin, or whichever local backend is configured), and only the
pictures it is unsure of sent to a paid backend (azure, rekognition), so a paid call is spent where it helps.

A picture goes on when, for any attribute in ``thresholds``, the local model gave no value or a score below
the threshold. The paid answer wins attribute by attribute where it has a value; the local one fills the
rest. When the paid backend fails, the local answer stands (never worse than the local model alone). The
sub-backends run their own active versions. Params:

    {"local": "builtin", "paid": "azure", "thresholds": {"image_type": 0.8}}
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PIL import Image

from classification.classifiers.base import Classifier, ClassifierError, Description, Values, describe
from classification.models import ModelVersion
from classification.versions import model_version_ensure_active
from classification.vocabulary import Attribute

logger = logging.getLogger(__name__)

LOCAL_BACKENDS = frozenset({"builtin", "http", "learned"})
PAID_BACKENDS = frozenset({"azure", "rekognition"})


def sure(values: Values, thresholds: dict[str, float]) -> bool:
    """Whether the local answer is confident enough on every thresholded attribute to stop there."""
    for attribute, threshold in thresholds.items():
        value, score = values.get(attribute, (None, None))
        if value is None or score is None or score < float(threshold):
            return False
    return True


class CascadeClassifier:
    """``factory`` builds a backend's classifier from its model version: classification.classifiers passes its
    ``classifier_for`` (this module cannot import the package that imports it)."""

    def __init__(
        self,
        model_version: ModelVersion,
        *,
        local: Classifier | None = None,
        paid: Classifier | None = None,
        factory: Callable[[ModelVersion], Classifier] | None = None,
    ) -> None:
        self.model_version = model_version
        self.factory = factory
        self.params = model_version.params or {}
        self.thresholds: dict[str, float] = self.params.get("thresholds") or {Attribute.IMAGE_TYPE: 0.8}
        self.local = local or self._active(self.params.get("local") or "builtin", LOCAL_BACKENDS)
        self.paid = paid or self._active(self.params.get("paid") or "azure", PAID_BACKENDS)

    def _active(self, backend: str, allowed: frozenset[str]) -> Classifier:
        if backend not in allowed:
            raise ValueError(f"cascade: {backend!r} cannot be used here; expected one of {', '.join(sorted(allowed))}")
        if self.factory is None:
            raise ValueError("cascade: give the local and paid classifiers, or a factory to build them")
        return self.factory(model_version_ensure_active(backend=backend))

    def classify(self, picture: Image.Image) -> Values:
        return self.describe(picture).values

    def describe(self, picture: Image.Image) -> Description:
        first = describe(self.local, picture)
        if sure(first.values, self.thresholds):
            return first
        try:
            second = describe(self.paid, picture)
        except ClassifierError as exc:
            logger.warning("cascade: paid backend failed (%s); keeping the local answer", exc)
            return first
        values = dict(first.values)
        for attribute, (value, score) in second.values.items():
            if value is not None:
                values[attribute] = (value, score)
        return Description(
            values=values,
            labels=second.labels or first.labels,
            labels_version=second.labels_version if second.labels else first.labels_version,
            calls=[*first.calls, *second.calls],
        )
