"""The rekognition backend: AWS Rekognition DetectLabels with image properties, through boto3.

Image type from labels mapped by configuration (a vehicle label → Dealer, or Stock when the background is
mostly white; no vehicle but a mapped label such as Text or Logo → Placeholder); colour from the dominant
colours of the vehicle instance (else the foreground), named through the configured map of Rekognition's
simplified colours, else by the nearest CIELAB prototype of the builtin classifier. Params:

    {"region": "eu-west-1", "min_confidence": 70, "vehicle_labels": ["Car", "Vehicle", …],
     "label_map": {"Text": "Placeholder", "Logo": "Placeholder"}, "stock_min_white_background": 60,
     "color_map": {"gray": "Grey", "silver": "Grey", "maroon": "Burgundy"}}
"""

from __future__ import annotations

from PIL import Image

from classification.classifiers.base import ClassifierError, Description, Values, jpeg_bytes, mapped_value
from classification.classifiers.builtin import nearest_color
from classification.models import ModelVersion
from classification.vocabulary import Attribute, ImageType
from core.retry import RETRY

DEFAULT_VEHICLE_LABELS = ("Car", "Vehicle", "Automobile", "Truck", "Van", "Suv", "Pickup Truck", "Motorcycle")
DEFAULT_LABEL_MAP = {"Text": ImageType.PLACEHOLDER, "Logo": ImageType.PLACEHOLDER, "Symbol": ImageType.PLACEHOLDER}
DEFAULT_COLOR_MAP = {"gray": "Grey", "grey": "Grey", "silver": "Grey", "maroon": "Burgundy", "navy": "Blue"}
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "InternalServerError",
        "ServiceUnavailableException",
        "LimitExceededException",
        "RequestTimeout",
    }
)


class RekognitionClassifier:
    def __init__(self, model_version: ModelVersion, client=None) -> None:
        self.model_version = model_version
        self.params = model_version.params or {}
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "rekognition",
                region_name=self.params.get("region") or None,
                config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"}),
            )
        return self._client

    def classify(self, picture: Image.Image) -> Values:
        return self.describe(picture).values

    def describe(self, picture: Image.Image) -> Description:
        """Values plus every label (and its parents) as a searchable tag, scored by confidence / 100."""
        answer = self._detect(picture)
        labels: dict[str, float] = {}
        for label in answer.get("Labels", []):
            score = round(float(label.get("Confidence", 0)) / 100, 4)
            for name in [label.get("Name", ""), *(p.get("Name", "") for p in label.get("Parents", []))]:
                if name.strip():
                    labels[name.strip().lower()] = max(score, labels.get(name.strip().lower(), 0.0))
        return Description(
            values=self._values(answer), labels=labels, labels_version=self.model_version, calls=[self.model_version]
        )

    def _detect(self, picture: Image.Image) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.detect_labels(
                Image={"Bytes": jpeg_bytes(picture)},
                MaxLabels=int(self.params.get("max_labels", 25)),
                MinConfidence=float(self.params.get("min_confidence", 70)),
                Features=["GENERAL_LABELS", "IMAGE_PROPERTIES"],
                Settings={"ImageProperties": {"MaxDominantColors": 5}},
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            meta = exc.response.get("ResponseMetadata", {})
            # The named throttling codes, or what the one policy (core.retry) retries: 429 and 5xx.
            transient = code in TRANSIENT_CODES or RETRY.status_transient(int(meta.get("HTTPStatusCode") or 0))
            wait = RETRY.retry_after_seconds((meta.get("HTTPHeaders") or {}).get("retry-after")) if transient else None
            raise ClassifierError(f"rekognition: {code}", transient=transient, retry_after=wait) from exc
        except BotoCoreError as exc:  # endpoint unreachable, read timeout, credentials missing
            transient = exc.__class__.__name__ in {"EndpointConnectionError", "ReadTimeoutError", "ConnectTimeoutError"}
            raise ClassifierError(f"rekognition: {exc}", transient=transient) from exc
        return answer

    def _values(self, answer: dict) -> Values:
        vehicle_labels = set(self.params.get("vehicle_labels") or DEFAULT_VEHICLE_LABELS)
        label_map = {**DEFAULT_LABEL_MAP, **(self.params.get("label_map") or {})}
        labels = sorted(answer.get("Labels", []), key=lambda label: -label.get("Confidence", 0))
        vehicle = next((label for label in labels if label.get("Name") in vehicle_labels), None)
        properties = answer.get("ImageProperties", {})
        if vehicle is not None:
            white = sum(
                c.get("PixelPercent", 0)
                for c in properties.get("Background", {}).get("DominantColors", [])
                if (c.get("SimplifiedColor") or "").lower() == "white"
            )
            stock = white >= float(self.params.get("stock_min_white_background", 60))
            image_type = (ImageType.STOCK if stock else ImageType.DEALER, round(vehicle["Confidence"] / 100, 4))
            return {Attribute.IMAGE_TYPE: image_type, Attribute.COLOR: self._color(vehicle, properties)}
        for label in labels:
            value = mapped_value(Attribute.IMAGE_TYPE, label.get("Name", ""), label_map)
            if value and label.get("Name") in label_map:
                return {
                    Attribute.IMAGE_TYPE: (value, round(label["Confidence"] / 100, 4)),
                    Attribute.COLOR: (None, None),
                }
        return {Attribute.IMAGE_TYPE: (None, None), Attribute.COLOR: (None, None)}

    def _color(self, vehicle: dict, properties: dict) -> tuple[str | None, float | None]:
        colors = []
        for instance in vehicle.get("Instances", []):
            colors.extend(instance.get("DominantColors", []))
        if not colors:
            colors = properties.get("Foreground", {}).get("DominantColors", [])
        if not colors:
            return (None, None)
        top = max(colors, key=lambda c: c.get("PixelPercent", 0))
        color_map = {**DEFAULT_COLOR_MAP, **(self.params.get("color_map") or {})}
        simplified = (top.get("SimplifiedColor") or "").lower()
        value = mapped_value(Attribute.COLOR, simplified, color_map) if simplified else None
        if value is None and all(k in top for k in ("Red", "Green", "Blue")):
            value = nearest_color((int(top["Red"]), int(top["Green"]), int(top["Blue"])))
        share = sum(c.get("PixelPercent", 0) for c in colors)
        return (str(value), round(top.get("PixelPercent", 0) / share, 4) if share else None) if value else (None, None)
