"""The production defaults that let workers survive broker and database loss (docs/deploy.md, "Faults"): read
from the Celery app of a process started with a production-like environment and no other setting."""

from core.retry import RETRY
from tests.support import production_read

_READ = """
from django.conf import settings
from config.celery import app
c = app.conf
print(json.dumps({
    "acks_late": c.task_acks_late, "reject_on_worker_lost": c.task_reject_on_worker_lost,
    "prefetch": c.worker_prefetch_multiplier, "max_retries": c.broker_connection_max_retries,
    "cancel_on_loss": c.worker_cancel_long_running_tasks_on_connection_loss,
    "visibility": c.broker_transport_options["visibility_timeout"], "time_limit": c.task_time_limit,
    "stalled": settings.SPOTCHECK_SITEMAP_STALLED_SECONDS,
    "beat": {e["task"]: e["schedule"] for e in c.beat_schedule.values()},
}))
"""


def production_worker_settings(tmp_path) -> dict:
    return production_read(
        _READ,
        env={
            "DATABASE_URL": "postgres://spot:pw@db.internal:5432/spotcheck",
            "REDIS_URL": "redis://cache.internal:6379/0",
        },
        var_dir=tmp_path,
    )


def test_workers_ack_late_requeue_a_killed_childs_task_and_reconnect_forever_by_default(tmp_path):
    conf = production_worker_settings(tmp_path)
    assert conf["acks_late"] is True and conf["reject_on_worker_lost"] is True and conf["prefetch"] == 1
    assert conf["max_retries"] is None  # a broker outage of any length is outlived
    assert conf["cancel_on_loss"] is True  # a task whose ack could not reach the broker comes back


def test_a_killed_chunk_comes_back_within_two_minutes_and_no_live_task_or_waiting_retry_twice(tmp_path):
    conf = production_worker_settings(tmp_path)
    stalled_sweep = conf["beat"]["sitemaps.tasks.scrapes_stalled_resume"]
    assert conf["stalled"] + stalled_sweep <= 120
    assert conf["beat"]["core.tasks.outbox_deliver"] <= 60
    # The broker hands an unacknowledged message out again only after the longest run or retry wait.
    assert conf["visibility"] > max(conf["time_limit"], RETRY.backoff_cap, RETRY.retry_after_cap)
