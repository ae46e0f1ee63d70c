"""The Celery application; configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("spotcheck", task_cls="core.retry:PolicyTask")  # the one retry policy of every task
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def database_connections_recycle(sender=None, **kwargs) -> None:
    """Around each task, close the database connections Django would close between two requests (older than
    CONN_MAX_AGE, failing their health check, or broken by an error) and keep the others.

    Celery's Django fixup closes every connection around every task unless CELERY_DB_REUSE_MAX is set (it
    is, see settings): each scrape chunk then paid a new PostgreSQL connection, a backend process forked
    and its caches warmed. Eager tasks run inside the caller's transaction and are left alone.
    """
    if sender is not None and getattr(sender.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
