"""The azure backend: Azure AI Vision Image Analysis 3.2 over REST (tags, objects, dominant colours).

``POST {endpoint}/vision/v3.2/analyze?visualFeatures=Tags,Objects,Color`` with the JPEG as
``application/octet-stream`` and the key in ``Ocp-Apim-Subscription-Key``. Image type from the tags and
detected objects (a vehicle → Dealer, or Stock when the dominant background colour is white; no vehicle
but a mapped tag such as "text" or "logo" → Placeholder); colour from the dominant foreground colour
named through the configured map. Every tag and object (with its parents) is kept as a searchable label.
The endpoint comes from the version's params or ``SPOTCHECK_AZURE_VISION_ENDPOINT``; the key only from
``SPOTCHECK_AZURE_VISION_KEY`` (a secret never stored in the database). Params:

    {"endpoint": "https://NAME.cognitiveservices.azure.com", "timeout": 15, "min_confidence": 0.5,
     "vehicle_labels": ["car", "vehicle", "land vehicle", …], "label_map": {"text": "Placeholder", …},
     "color_map": {"gray": "Grey", "teal": "Blue"}, "max_retries": 2, "max_retry_wait": 5}

Throttling (429) and 5xx are transient (the one policy, core.retry): a short ``Retry-After`` (seconds or an
HTTP date) is waited for here (at most ``max_retries`` times); a longer one is handed to the caller on the
ClassifierError. Other 4xx are final.
"""

from __future__ import annotations

import time

import requests
from django.conf import settings
from PIL import Image

from classification.classifiers.base import ClassifierError, Description, Values, jpeg_bytes, mapped_value
from classification.models import ModelVersion
from classification.vocabulary import Attribute, ImageType
from core.retry import RETRY

API_PATH = "/vision/v3.2/analyze"
FEATURES = "Tags,Objects,Color"
DEFAULT_VEHICLE_LABELS = (
    "car",
    "vehicle",
    "land vehicle",
    "automobile",
    "truck",
    "van",
    "suv",
    "pickup truck",
    "sedan",
    "motorcycle",
)
DEFAULT_LABEL_MAP = {
    "text": ImageType.PLACEHOLDER,
    "logo": ImageType.PLACEHOLDER,
    "font": ImageType.PLACEHOLDER,
    "graphics": ImageType.PLACEHOLDER,
    "sign": ImageType.PLACEHOLDER,
}
DEFAULT_COLOR_MAP = {"gray": "Grey", "grey": "Grey", "teal": "Blue"}


def error_text(response: requests.Response) -> str:
    """The service's error as one line: ``{"error": {"code", "message", "innererror": {"code", "message"}}}``."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return response.text[:200]
    inner = error.get("innererror") or {}
    code = inner.get("code") or error.get("code") or ""
    message = inner.get("message") or error.get("message") or ""
    return f"{code}: {message}"[:300]


class AzureClassifier:
    def __init__(self, model_version: ModelVersion) -> None:
        self.model_version = model_version
        self.params = model_version.params or {}

    def _endpoint(self) -> str:
        base = (self.params.get("endpoint") or settings.SPOTCHECK_AZURE_VISION_ENDPOINT or "").rstrip("/")
        if not base:
            raise ClassifierError("azure backend has no endpoint configured", transient=False)
        if not settings.SPOTCHECK_AZURE_VISION_KEY:
            raise ClassifierError("azure backend has no key (SPOTCHECK_AZURE_VISION_KEY)", transient=False)
        return base + API_PATH

    def classify(self, picture: Image.Image) -> Values:
        return self.describe(picture).values

    def describe(self, picture: Image.Image) -> Description:
        answer = self._analyze(jpeg_bytes(picture))
        return Description(
            values=self._values(answer),
            labels=self._labels(answer),
            labels_version=self.model_version,
            calls=[self.model_version],
        )

    def _analyze(self, body: bytes) -> dict:
        url = self._endpoint()
        retries = int(self.params.get("max_retries", 2))
        max_wait = float(self.params.get("max_retry_wait", 5))
        attempt = 0
        while True:
            try:
                response = requests.post(
                    url,
                    params={"visualFeatures": FEATURES, "language": "en", "model-version": "latest"},
                    headers={
                        "Ocp-Apim-Subscription-Key": settings.SPOTCHECK_AZURE_VISION_KEY,
                        "Content-Type": "application/octet-stream",
                    },
                    data=body,
                    timeout=float(self.params.get("timeout", 15)),
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                raise ClassifierError(f"azure unreachable: {exc}", transient=True) from exc
            except requests.RequestException as exc:
                raise ClassifierError(f"azure request failed: {exc}", transient=False) from exc
            if response.status_code == 200:
                try:
                    return response.json()
                except ValueError as exc:
                    raise ClassifierError(f"azure answered no JSON: {exc}", transient=False) from exc
            transient = RETRY.status_transient(response.status_code)
            wait = RETRY.retry_after_seconds(response.headers.get("Retry-After"))
            if transient and wait is not None and wait <= max_wait and attempt < retries:
                attempt += 1
                time.sleep(wait)
                continue
            raise ClassifierError(
                f"azure answered {response.status_code} {error_text(response)}",
                transient=transient,
                retry_after=wait if transient else None,
            )

    @staticmethod
    def _named(answer: dict) -> list[tuple[str, float]]:
        """Every tag and detected object (with its parent categories) as (lower-cased name, confidence)."""
        named = [(t.get("name", ""), float(t.get("confidence", 0))) for t in answer.get("tags") or []]
        for detected in answer.get("objects") or []:
            node = detected
            while isinstance(node, dict) and node.get("object"):
                named.append((node["object"], float(node.get("confidence", detected.get("confidence", 0)))))
                node = node.get("parent")
        return [(name.strip().lower(), score) for name, score in named if name and name.strip()]

    def _labels(self, answer: dict) -> dict[str, float]:
        labels: dict[str, float] = {}
        for name, score in self._named(answer):
            labels[name] = round(max(score, labels.get(name, 0.0)), 4)
        return labels

    def _values(self, answer: dict) -> Values:
        min_confidence = float(self.params.get("min_confidence", 0.5))
        vehicle_labels = {v.lower() for v in (self.params.get("vehicle_labels") or DEFAULT_VEHICLE_LABELS)}
        label_map = {**DEFAULT_LABEL_MAP, **{k.lower(): v for k, v in (self.params.get("label_map") or {}).items()}}
        named = sorted(((n, s) for n, s in self._named(answer) if s >= min_confidence), key=lambda pair: -pair[1])
        color = answer.get("color") or {}
        vehicle = next(((n, s) for n, s in named if n in vehicle_labels), None)
        if vehicle is not None:
            white = (color.get("dominantColorBackground") or "").lower() == "white"
            image_type = (ImageType.STOCK if white else ImageType.DEALER, round(vehicle[1], 4))
            return {Attribute.IMAGE_TYPE: image_type, Attribute.COLOR: self._color(color)}
        for name, score in named:
            if name in label_map:
                value = mapped_value(Attribute.IMAGE_TYPE, name, label_map)
                if value:
                    return {Attribute.IMAGE_TYPE: (value, round(score, 4)), Attribute.COLOR: (None, None)}
        return {Attribute.IMAGE_TYPE: (None, None), Attribute.COLOR: (None, None)}

    def _color(self, color: dict) -> tuple[str | None, float | None]:
        """The dominant foreground colour in our names. Azure gives no confidence for colours: no score."""
        foreground = (color.get("dominantColorForeground") or "").strip().lower()
        if not foreground:
            return (None, None)
        color_map = {**DEFAULT_COLOR_MAP, **{k.lower(): v for k, v in (self.params.get("color_map") or {}).items()}}
        value = mapped_value(Attribute.COLOR, foreground, color_map)
        return (str(value), None) if value else (None, None)
