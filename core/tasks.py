"""Operational tasks."""

from celery import shared_task
from django.core.cache import cache


@shared_task(ignore_result=True)
def ping(*, token: str) -> None:
    """Prove a worker is consuming: leave a short-lived mark that /healthz?worker=1 waits for."""
    cache.set(f"ping:{token}", "pong", timeout=60)
