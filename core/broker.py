"""The broker: how many messages wait in a queue, and the embedded broker (kombu's filesystem transport) with
messages that appear whole.

kombu's filesystem producer creates the message file and then writes it, while a consumer may already move
and read it, finding it empty (a JSONDecodeError in the worker, and the message lost). Here a message is
written under a name the consumer ignores and renamed into place, which is atomic on one filesystem.
"""

import logging
import os
import uuid
from time import monotonic

from celery import current_app
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class AtomicChannel(filesystem.Channel):
    # ``_put`` is private by name but is the hook kombu's virtual transports implement (basic_publish calls
    # it); kombu has no public way to change how the filesystem transport writes a message.
    # tests/core/test_broker.py fails if its name or arguments change.
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # the consumer only reads names ending in ".<queue>.msg"
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicChannel


log = logging.getLogger(__name__)


def queue_waiting(name: str, *, app=None) -> int | None:
    """Messages waiting in queue ``name`` (not yet taken by a worker), every priority counted; 0 for a queue
    the broker does not hold (Redis drops an empty list). None when the broker cannot tell now (unreachable,
    or tasks run eagerly): a caller must treat that as "unknown", not as "empty" or "full". ``app``: the Celery
    app to ask (default: the project's)."""
    app = app or current_app
    if app.conf.task_always_eager:
        return None
    try:
        # A connection of the app's pool, connected once (a new one per call cost a fetch worker more than
        # the database work of a chunk of 304s); it is checked, and given up after one try when down.
        with app.pool.acquire(block=True, timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            # A passive declare only asks; it never creates the queue or changes its arguments. "No such
            # queue" is answered inside the block: an exception leaving it makes the pool close the connection
            # (kombu's PooledConnection.__exit__), and reconnecting cost 2.6 ms of CPU per call whenever the
            # queue was empty (every chunk of a re-check) against 0.4 ms.
            try:
                return conn.default_channel.queue_declare(queue=name, passive=True).message_count
            except ChannelError:
                return 0
    except Exception as exc:  # noqa: BLE001 - any broker failure only means "unknown"
        log.warning("broker: cannot count the messages of queue %s: %s", name, exc)
        return None
