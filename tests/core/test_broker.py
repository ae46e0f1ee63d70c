"""The embedded broker writes each message under a name consumers ignore, then renames it into place; the
messages waiting in a queue are counted on either broker, and "unknown" when the broker cannot tell."""

import json
import os

import pytest
from celery import Celery
from django.conf import settings
from kombu import Connection

from config.celery import app
from core.broker import AtomicFilesystemTransport, queue_waiting
from tests.support import needs_redis

embedded_broker = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("filesystem://"), reason="the embedded broker is not in use (REDIS_URL)"
)


def folders(tmp_path) -> dict:
    """Transport options keeping the filesystem transport's messages in tmp_path/queue and its exchange table
    in tmp_path/control (by default that is a "control" folder wherever the tests run)."""
    (tmp_path / "queue").mkdir(exist_ok=True)
    return {
        "data_folder_in": str(tmp_path / "queue"),
        "data_folder_out": str(tmp_path / "queue"),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
    }


@embedded_broker
def test_embedded_celery_uses_the_atomic_filesystem_transport():
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, AtomicFilesystemTransport)


def test_a_message_is_never_visible_half_written(tmp_path, monkeypatch):
    seen_while_writing, renamed = [], []
    real_replace = os.replace

    def spying_replace(src, dst):
        renamed.append(src)
        seen_while_writing.extend(name for name in os.listdir(tmp_path / "queue") if name.endswith(".msg"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spying_replace)
    options = folders(tmp_path)
    with Connection("filesystem://", transport=AtomicFilesystemTransport, transport_options=options) as connection:
        queue = connection.SimpleQueue("jobs")
        queue.put({"n": 1})
        assert renamed and renamed[0].endswith(".jobs.msg.part")
        assert seen_while_writing == []  # before the rename no consumer-visible file existed
        names = os.listdir(tmp_path / "queue")
        assert len(names) == 1 and names[0].endswith(".jobs.msg")
        assert json.loads((tmp_path / "queue" / names[0]).read_text())["body"]
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


def test_queue_waiting_counts_the_messages_of_one_queue_on_the_embedded_broker(tmp_path):
    options = folders(tmp_path)
    counting = Celery(broker="filesystem://", broker_transport_options=options)
    assert queue_waiting("classify", app=counting) == 0
    with Connection("filesystem://", transport=AtomicFilesystemTransport, transport_options=options) as connection:
        for n in range(3):
            connection.SimpleQueue("classify").put({"n": n})
        connection.SimpleQueue("fetch").put({"n": "other"})
    assert queue_waiting("classify", app=counting) == 3


@needs_redis
def test_queue_waiting_counts_every_priority_of_a_redis_queue_and_an_empty_one_as_zero():
    url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/15"
    counting = Celery(broker=url)
    with Connection(url) as connection:
        queue = connection.SimpleQueue("spotcheck-test-waiting")
        queue.clear()
        assert queue_waiting("spotcheck-test-waiting", app=counting) == 0  # Redis holds no key for it
        for priority in (0, 9, 9):
            queue.put({"p": priority}, priority=priority)
        try:
            assert queue_waiting("spotcheck-test-waiting", app=counting) == 3
        finally:
            queue.clear()


@needs_redis
def test_counting_an_empty_redis_queue_keeps_the_pooled_connection(monkeypatch):
    url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/15"
    counting = Celery(broker=url)
    with Connection(url) as connection:
        connection.SimpleQueue("spotcheck-test-empty").clear()
    connects = []
    establish = Connection._establish_connection
    monkeypatch.setattr(Connection, "_establish_connection", lambda self: connects.append(1) or establish(self))
    assert [queue_waiting("spotcheck-test-empty", app=counting) for _ in range(3)] == [0, 0, 0]
    assert len(connects) <= 1  # connected once at most (the pool may hold one), not for each "no such queue"


def test_queue_waiting_is_unknown_when_the_broker_is_unreachable_or_tasks_run_eagerly():
    assert queue_waiting("classify", app=Celery(broker="redis://127.0.0.1:9/0")) is None
    eager = Celery(broker="filesystem://")
    eager.conf.task_always_eager = True
    assert queue_waiting("classify", app=eager) is None
