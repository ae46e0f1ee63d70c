"""The classifier interface every backend implements: a decoded picture in, a value and score per attribute out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from classification.models import ModelVersion

# attribute → (value or None when the backend has no answer, score in [0, 1] or None)
Values = dict[str, tuple[str | None, float | None]]


class ClassifierError(Exception):
    """A backend failed. ``transient`` failures (timeouts, 5xx, throttling) are worth retrying later;
    the others (a bad answer, a refused picture) yield "no value" straight away. ``retry_after`` is the
    wait in seconds a throttling service asked for (its Retry-After), when it said one."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class Classifier(Protocol):
    model_version: ModelVersion

    def classify(self, picture: Image.Image) -> Values:
        """Values for the attributes this backend knows; raises ClassifierError when it cannot answer.

        ``picture.info["sha256"]``, when set, is the SHA-256 of the Image the picture was decoded for (a
        backend may cache per picture by it)."""
        ...


@dataclass
class Description:
    """Everything a backend said about one picture: our values, the backend's own labels (lower-cased name →
    score in [0, 1], e.g. ``{"car": 0.98, "beach": 0.71}``) made by ``labels_version``, and the versions the
    picture was sent to (a cascade may call two)."""

    values: Values
    labels: dict[str, float] = field(default_factory=dict)
    labels_version: ModelVersion | None = None
    calls: list[ModelVersion] = field(default_factory=list)


def describe(classifier: Classifier, picture: Image.Image) -> Description:
    """A backend's Description of a picture: its own ``describe`` when it has labels to tell, else its values."""
    own = getattr(classifier, "describe", None)
    if own is not None:
        return own(picture)
    version = classifier.model_version
    return Description(values=classifier.classify(picture), calls=[version])


def jpeg_bytes(picture: Image.Image, *, quality: int = 90) -> bytes:
    """The working picture re-encoded for a remote backend (small: at most 800 px on its long side)."""
    import io

    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def mapped_value(attribute: str, label: str, label_map: dict[str, str]) -> str | None:
    """A backend's label as one of our values: through the configured map, else by spelling, else None."""
    from classification.vocabulary import normalize

    mapped = label_map.get(label, label)
    return normalize(attribute, mapped) if mapped else None
