"""The http backend: a model server speaking the TensorFlow Serving REST predict API.

``POST {url}/v1/models/{model}:predict`` with ``{"instances": [{"b64": …}]}``. The answer's predictions are
either one list of class scores (for the first configured attribute) or a dict of named outputs; the
version's params say which output is which attribute and what each class index means:

    {"url": "http://tfserving:8501", "model": "image_type", "timeout": 10,
     "outputs": {"image_type": "type_probs", "color": "color_probs"},
     "labels": {"image_type": ["dealer", "stock", "placeholder"], "color": ["black", …]},
     "label_map": {"dealer": "Dealer"}, "min_score": 0.0}

The model server is our own service (configured, not user-supplied), so plain ``requests`` is used. Which
answers are worth a retry, and how long to wait (its ``Retry-After``), is the one policy's call (core.retry).
"""

from __future__ import annotations

import base64

import requests
from PIL import Image

from classification.classifiers.base import ClassifierError, Values, jpeg_bytes, mapped_value
from classification.models import ModelVersion
from core.retry import RETRY


class HttpClassifier:
    def __init__(self, model_version: ModelVersion) -> None:
        self.model_version = model_version
        self.params = model_version.params or {}

    def _endpoint(self) -> str:
        base = (self.params.get("url") or "").rstrip("/")
        if not base:
            raise ClassifierError("http backend has no url configured", transient=False)
        model = self.params.get("model") or "default"
        version = self.params.get("version")
        path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
        return base + path

    def classify(self, picture: Image.Image) -> Values:
        payload: dict = {"instances": [{"b64": base64.b64encode(jpeg_bytes(picture)).decode("ascii")}]}
        if self.params.get("signature_name"):
            payload["signature_name"] = self.params["signature_name"]
        try:
            response = requests.post(self._endpoint(), json=payload, timeout=float(self.params.get("timeout", 10)))
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise ClassifierError(f"model server unreachable: {exc}", transient=True) from exc
        except requests.RequestException as exc:
            raise ClassifierError(f"model server request failed: {exc}", transient=False) from exc
        if response.status_code != 200:
            transient = RETRY.status_transient(response.status_code)
            raise ClassifierError(
                f"model server answered {response.status_code}: {response.text[:200]}",
                transient=transient,
                retry_after=RETRY.retry_after_seconds(response.headers.get("Retry-After")) if transient else None,
            )
        try:
            prediction = response.json()["predictions"][0]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ClassifierError(f"unexpected model server answer: {exc}", transient=False) from exc
        return self._values(prediction)

    def _values(self, prediction) -> Values:
        labels: dict[str, list[str]] = self.params.get("labels") or {}
        outputs: dict[str, str] = self.params.get("outputs") or {}
        label_map: dict[str, str] = self.params.get("label_map") or {}
        min_score = float(self.params.get("min_score", 0.0))
        values: Values = {}
        for index, (attribute, names) in enumerate(labels.items()):
            if isinstance(prediction, dict):
                scores = prediction.get(outputs.get(attribute, attribute))
            else:
                scores = prediction if index == 0 else None  # one unnamed output: the first attribute's
            if not isinstance(scores, list) or len(scores) != len(names):
                raise ClassifierError(f"output for {attribute} does not match its {len(names)} labels", transient=False)
            best = max(range(len(scores)), key=lambda i: scores[i])
            score = float(scores[best])
            value = mapped_value(attribute, names[best], label_map) if score >= min_score else None
            values[attribute] = (value, round(score, 4) if value else None)
        return values
