"""The embedded broker writes each message under a name consumers ignore, then renames it into place."""

import json
import os

import pytest
from django.conf import settings
from kombu import Connection

from config.celery import app
from core.broker import AtomicFilesystemTransport

embedded_broker = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("filesystem://"), reason="the embedded broker is not in use (REDIS_URL)"
)


@embedded_broker
def test_embedded_celery_uses_the_atomic_filesystem_transport():
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, AtomicFilesystemTransport)


def test_a_message_is_never_visible_half_written(tmp_path, monkeypatch):
    seen_while_writing, renamed = [], []
    real_replace = os.replace

    def spying_replace(src, dst):
        renamed.append(src)
        seen_while_writing.extend(name for name in os.listdir(tmp_path) if name.endswith(".msg"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spying_replace)
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path), "store_processed": False}
    with Connection("filesystem://", transport=AtomicFilesystemTransport, transport_options=options) as connection:
        queue = connection.SimpleQueue("jobs")
        queue.put({"n": 1})
        assert renamed and renamed[0].endswith(".jobs.msg.part")
        assert seen_while_writing == []  # before the rename no consumer-visible file existed
        names = os.listdir(tmp_path)
        assert len(names) == 1 and names[0].endswith(".jobs.msg")
        assert json.loads((tmp_path / names[0]).read_text())["body"]
        assert queue.get(timeout=1).payload == {"n": 1}
        queue.close()


def test_kombus_private_put_still_has_the_shape_the_atomic_channel_overrides():
    """AtomicChannel overrides kombu's ``filesystem.Channel._put``: the hook kombu's virtual transports are
    written against, private by name only. If kombu renames it or changes its arguments, this fails (and the
    half-written-message test above would stop seeing the rename)."""
    import inspect

    from kombu.transport import filesystem

    assert "_put" in vars(filesystem.Channel)
    assert list(inspect.signature(filesystem.Channel._put).parameters) == ["self", "queue", "payload", "kwargs"]
