"""Reachability of the services Spotcheck depends on: database, cache, broker (and, on request, a worker)."""

import time
import uuid
from collections.abc import Callable

from celery import current_app
from django.core.cache import cache
from django.db import connection

WORKER_RESULT_KEY = "healthz:worker-result"
WORKER_RESULT_SECONDS = 10


def _timed(check: Callable[[], None]) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001  (any failure means "unreachable"; the reason is reported)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _cache() -> None:
    key = f"healthz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)


def _broker() -> None:
    # The project's app (config.celery) is current once settings are loaded; core does not import config.
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _worker() -> None:
    from core.tasks import ping

    token = uuid.uuid4().hex
    ping.delay(token=token)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if cache.get(f"ping:{token}"):
            return
        time.sleep(0.1)
    raise TimeoutError("no worker answered within 5 s")


def health_report(*, include_worker: bool = False) -> dict:
    """Check each service; ``ok`` is true only when every check passed."""
    checks = {"database": _timed(_database), "cache": _timed(_cache), "broker": _timed(_broker)}
    if include_worker:
        # /healthz is public: reuse a recent answer so callers cannot queue a ping per request.
        checks["worker"] = cache.get(WORKER_RESULT_KEY) if checks["cache"]["ok"] else None
        if checks["worker"] is None:
            checks["worker"] = _timed(_worker)
            if checks["cache"]["ok"]:
                cache.set(WORKER_RESULT_KEY, checks["worker"], timeout=WORKER_RESULT_SECONDS)
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}
