"""Test settings: the embedded defaults (or the real services named by the environment), made hermetic.

Media and the embedded cache/broker go to a temporary folder, passwords hash fast, and tasks run eagerly
unless a test starts a real worker.
"""

import os
import tempfile
from pathlib import Path

_tmp = Path(tempfile.mkdtemp(prefix="spotcheck-test-"))
os.environ.setdefault("SPOTCHECK_VAR_DIR", str(_tmp))

from config.settings import *  # noqa: E402,F403
from config.settings import DATABASE_URL, REDIS_URL  # noqa: E402

MEDIA_ROOT = _tmp / "media"
if not DATABASE_URL:
    # A file, not Django's default in-memory test database: an in-memory one is a single connection that the
    # live server's request threads share with the test thread, and their interleaved atomic blocks left it
    # outside autocommit for the tests that followed (on_commit() "cannot be used in manual transaction
    # management", scrapes left queued). With a file each thread has its own connection, as in production.
    DATABASES["default"]["TEST"] = {"NAME": str(_tmp / "test.sqlite3")}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if REDIS_URL:
    CACHES["default"]["KEY_PREFIX"] = f"spotcheck-test-{os.getpid()}"  # noqa: F405
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "spotcheck-test"}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
SPOTCHECK_FETCH_ALLOW: list[str] = []  # tests allow the exact host:port of the server they start
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
