"""Fixtures for dataset tests: pictures with small generated thumbnails and ground truth, made directly."""

import hashlib
import io
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image as PILImage

from classification.models import GroundTruth, Image


def jpeg_bytes(color=(200, 30, 30), size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, color).save(buf, "JPEG", quality=80)
    return buf.getvalue()


@pytest.fixture
def make_image(db):
    counter = {"n": 0}

    def make(*, width=640, height=480, phash=None, name=None, thumbnail=True, thumb_bytes=None) -> Image:
        counter["n"] += 1
        key = name or f"picture-{counter['n']}"
        sha = hashlib.sha256(key.encode()).hexdigest()
        image = Image(sha256=sha, width=width, height=height, phash=phash, format="JPEG")
        if thumbnail:
            data = thumb_bytes or jpeg_bytes(((counter["n"] * 37) % 256, 90, 140))
            image.thumbnail.save(f"{sha}.jpg", ContentFile(data), save=False)
        image.save()
        return image

    return make


@pytest.fixture
def truth(db):
    """Record ground truth directly; ``ago`` in minutes places it in the past."""

    def record(
        image,
        value,
        *,
        attribute="image_type",
        source="consensus",
        advertiser="",
        ago=0,
        url="",
        votes=None,
        margin=None,
    ) -> GroundTruth:
        if source == GroundTruth.Source.ADVERTISER_FIX and not advertiser:
            advertiser = "acme"
        return GroundTruth.objects.create(
            image=image,
            attribute=attribute,
            value=value,
            source=source,
            advertiser=advertiser,
            url=url,
            votes=votes,
            margin=margin,
            created_at=timezone.now() - timedelta(minutes=ago),
        )

    return record


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


class _Pictures:
    """A threaded HTTP server on 127.0.0.1 serving fixed bytes per path (for POST /api/v1/classify/)."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True

    def add(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def pictures_served(settings):
    import threading

    server = _Pictures()
    settings.SPOTCHECK_FETCH_ALLOW = [f"127.0.0.1:{server.httpd.server_address[1]}"]
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
