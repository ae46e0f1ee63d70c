"""A local stand-in for Azure AI Vision Image Analysis 3.2 (``POST /vision/v3.2/analyze``), a real HTTP server
on 127.0.0.1 for the tests and the cascade benchmark.

It answers as the service does, errors included: 401 with the gateway's body for a missing or wrong
``Ocp-Apim-Subscription-Key``, 400 ``InvalidRequest`` with an ``innererror`` for an unknown visual
feature, bytes that are not a picture, or a picture under 50 by 50 pixels or over 4 MB, 429 with ``Retry-After``
when throttling, 404 for another path. A successful answer is the ``{"tags", "objects", "color",
"requestId", "metadata"}`` document a ``responder(picture)`` builds (tests give a fixed document).
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from PIL import Image

KNOWN_FEATURES = {"categories", "tags", "description", "faces", "imagetype", "color", "adult", "objects", "brands"}
MAX_BYTES = 4 * 1024 * 1024


@dataclass
class Scripted:
    """A reply served instead of the analysis (throttling, outages): status, JSON body, headers."""

    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)


def throttled(retry_after: int = 1) -> Scripted:
    message = f"Rate limit is exceeded. Try again in {retry_after} seconds."
    return Scripted(429, {"error": {"code": "429", "message": message}}, {"Retry-After": str(retry_after)})


def unavailable() -> Scripted:
    return Scripted(
        503, {"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unavailable."}}
    )


def internal_error() -> Scripted:
    inner = {"code": "InternalServerError", "message": "An internal error has occurred."}
    return Scripted(500, {"error": {"code": "InternalServerError", "message": inner["message"], "innererror": inner}})


def _invalid(inner_code: str, message: str) -> tuple[int, dict]:
    return 400, {
        "error": {"code": "InvalidRequest", "message": message, "innererror": {"code": inner_code, "message": message}}
    }


def answer(*, tags=(), objects=(), foreground="Black", background="White", dominant=("White",)) -> dict:
    """A 3.2 analysis document: ``tags`` as (name, confidence), ``objects`` as (name, confidence, parents…)."""
    built_objects = []
    for name, confidence, *parents in objects:
        parent = None
        for parent_name in reversed(parents):
            parent = {"object": parent_name, "confidence": confidence, **({"parent": parent} if parent else {})}
        entry = {"rectangle": {"x": 10, "y": 10, "w": 100, "h": 60}, "object": name, "confidence": confidence}
        if parent:
            entry["parent"] = parent
        built_objects.append(entry)
    return {
        "tags": [{"name": n, "confidence": c} for n, c in tags],
        "objects": built_objects,
        "color": {
            "dominantColorForeground": foreground,
            "dominantColorBackground": background,
            "dominantColors": list(dominant),
            "accentColor": "BB6D10",
            "isBwImg": False,
        },
    }


class FakeAzureVision:
    def __init__(self, *, key: str = "fake-azure-key", responder: Callable[[Image.Image], dict] | None = None):
        self.key = key
        self.responder = responder or (lambda _picture: answer())
        self.script: list[Scripted] = []  # served first, one per request
        self.seen: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, document, headers = fake.handle(self.path, dict(self.headers.items()), body)
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> FakeAzureVision:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, dict[str, str]]:
        parsed = urlparse(path)
        query = parse_qs(parsed.query)
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self.seen.append({"path": parsed.path, "query": query, "headers": lowered, "bytes": len(body)})
            scripted = self.script.pop(0) if self.script else None
        if lowered.get("ocp-apim-subscription-key") != self.key:
            message = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                "valid key for an active subscription and use a correct regional API endpoint for your resource."
            )
            return 401, {"error": {"code": "401", "message": message}}, {}
        if parsed.path != "/vision/v3.2/analyze":
            return 404, {"error": {"code": "404", "message": "Resource not found"}}, {}
        if scripted is not None:
            return scripted.status, scripted.body, scripted.headers
        features = {f.strip().lower() for f in ",".join(query.get("visualFeatures", [])).split(",") if f.strip()}
        if not features or features - KNOWN_FEATURES:
            return (*_invalid("NotSupportedVisualFeature", "Analyze query is invalid."), {})
        if len(body) > MAX_BYTES:
            return (*_invalid("InvalidImageSize", "Image size is too big."), {})
        try:
            picture = Image.open(io.BytesIO(body))
            picture.load()
        except Exception:  # noqa: BLE001 - anything Pillow refuses is what the service calls an invalid image
            return (*_invalid("InvalidImageFormat", "Input data is not a valid image."), {})
        if min(picture.size) < 50:
            return (*_invalid("InvalidImageSize", "Image must be at least 50 pixels in width and height."), {})
        document = dict(self.responder(picture))
        document["requestId"] = str(uuid.uuid4())
        document["metadata"] = {"height": picture.height, "width": picture.width, "format": picture.format.title()}
        document["modelVersion"] = "2021-05-01"
        return 200, document, {}
