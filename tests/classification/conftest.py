"""Fixtures for classification tests: a local picture server that records what it was asked, loopback
fetching switched on for it, and spies counting classifier runs and decodes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from classification import imaging
from classification.classifiers.builtin import BuiltinClassifier
from classification.synthetic import picture_bytes


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class PictureServer:
    """A threaded HTTP server on 127.0.0.1. Routes map a path to a function(request headers) → Reply,
    or to a raw function(handler) for misbehaving servers. Every request is logged with its answer."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable] = {}
        self.raw_routes: dict[str, Callable] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                seen = Seen("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                with server._lock:
                    server.seen.append(seen)
                if self.path in server.raw_routes:
                    server.raw_routes[self.path](self)
                    return
                route = server.routes.get(self.path)
                reply = route(seen.headers) if route else Reply(404, b"not found")
                seen.status = reply.status
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if "Content-Length" not in reply.headers:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if reply.status != 304:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # batches connect concurrently; the default backlog of 5 drops SYNs

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def statuses(self, path: str) -> list[int | None]:
        return [s.status for s in self.seen if s.path == path]

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def serve(self, path: str, body: bytes, *, headers: dict[str, str] | None = None, content_type="image/jpeg"):
        """A plain picture (200 every time)."""
        fixed = {"Content-Type": content_type, **(headers or {})}
        self.routes[path] = lambda _h: Reply(200, body, dict(fixed))


@pytest.fixture
def picture_server():
    server = PictureServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def allow_loopback(settings, request):
    """Allow fetching from the test's own picture server by its exact host:port, nothing else on loopback;
    ``allow_loopback(port)`` adds another port."""

    def allow(port: int) -> None:
        settings.SPOTCHECK_FETCH_ALLOW = [*settings.SPOTCHECK_FETCH_ALLOW, f"127.0.0.1:{port}"]

    settings.SPOTCHECK_FETCH_ALLOW = []
    if "picture_server" in request.fixturenames:
        allow(request.getfixturevalue("picture_server").httpd.server_address[1])
    return allow


@pytest.fixture
def classifier_runs(monkeypatch):
    """Counts calls of the builtin classifier (it still classifies)."""
    calls: list[int] = []
    original = BuiltinClassifier.classify

    def counting(self, picture):
        calls.append(1)
        return original(self, picture)

    monkeypatch.setattr(BuiltinClassifier, "classify", counting)
    return calls


@pytest.fixture
def decodes(monkeypatch):
    """Counts pictures decoded (the CPU work stage 1 must never do)."""
    calls: list[int] = []
    original = imaging.decode

    def counting(data, **kwargs):
        calls.append(1)
        return original(data, **kwargs)

    monkeypatch.setattr(imaging, "decode", counting)
    return calls


@pytest.fixture(scope="session")
def stock_red_jpeg() -> bytes:
    return picture_bytes(kind="stock", color="Red", width=640, height=480, seed=1)


@pytest.fixture(scope="session")
def dealer_blue_jpeg() -> bytes:
    return picture_bytes(kind="dealer", color="Blue", width=640, height=480, seed=2)


def trickle(handler, *, interval: float = 0.2, total: int = 1000, headers_first: bool = True) -> None:
    """A raw route body: headers, then one byte every ``interval`` seconds."""
    try:
        if headers_first:
            handler.send_response(200)
            handler.send_header("Content-Type", "image/jpeg")
            handler.send_header("Content-Length", str(total))
            handler.end_headers()
            handler.wfile.flush()
        for _ in range(total):
            handler.wfile.write(b"\xff")
            handler.wfile.flush()
            time.sleep(interval)
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass


@pytest.fixture
def moto_server():
    """moto's S3 and SNS as a real HTTP server on 127.0.0.1 (an ephemeral port), with fake credentials."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def media_bucket(moto_server, settings, monkeypatch):
    """Media on S3 (django-storages) in a bucket of the moto server; yields a boto3 client of that bucket."""
    import boto3

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.create_bucket(Bucket="spotcheck-media")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "spotcheck-media",
                "region_name": "us-east-1",
                "endpoint_url": moto_server,
                "default_acl": None,
                "file_overwrite": False,
            },
        },
    }
    return client
