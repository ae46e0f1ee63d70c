"""Operational tasks."""

from celery import shared_task
from django.core.cache import cache


@shared_task(ignore_result=True)
def ping(*, token: str) -> None:
    """Prove a worker is consuming: leave a short-lived mark that /healthz?worker=1 waits for."""
    cache.set(f"ping:{token}", "pong", timeout=60)


@shared_task(name="core.tasks.outbox_deliver", ignore_result=True)
def outbox_deliver() -> int:
    """Periodic (beat): send the task messages the broker did not take when their transaction committed."""
    from core import outbox

    return outbox.outbox_deliver()
