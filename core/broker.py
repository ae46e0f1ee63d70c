"""The embedded broker: kombu's filesystem transport, with messages that appear whole.

kombu's filesystem producer creates the message file and then writes it, while a consumer may already move
and read it, finding it empty (a JSONDecodeError in the worker, and the message lost). Here a message is
written under a name the consumer ignores and renamed into place, which is atomic on one filesystem.
"""

import os
import uuid
from time import monotonic

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
