"""While the database or the cache is unreachable, requests answer 503 with ``Retry-After`` in the JSON error
shape instead of a 500: the service is down for a moment, the request is not wrong, and the client may retry.

``OutageMiddleware`` sits right after the authentication middleware. It loads the user first (the session and
the user are read from the database before any view runs) and turns an outage raised by a view into the 503.
"""

import logging
import sqlite3

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

from core.api import error_body

log = logging.getLogger(__name__)


class Unreachable(Exception):
    """Base of an app's "backing service unreachable now" error (e.g. classification.cache.CacheUnavailable),
    so core answers 503 for it without importing the app."""


def _cache_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [Unreachable]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is a dependency; the embedded cache needs no client
        pass
    else:
        errors += [RedisConnectionError, RedisTimeoutError]
    return tuple(errors)


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` says a backing service is unreachable (not that the code or the input is wrong)."""
    if isinstance(exc, InterfaceError):
        return True  # "connection already closed": the server went away under a kept connection
    if isinstance(exc, OperationalError):
        cause = exc.__cause__
        if isinstance(cause, sqlite3.OperationalError):
            # SQLite raises OperationalError for bugs too ("no such table"); only a busy or missing file is
            # an outage.
            message = str(cause).lower()
            return "locked" in message or "unable to open" in message or "disk i/o" in message
        return True
    return isinstance(exc, _cache_errors())


def outage_response(exc: BaseException) -> JsonResponse:
    seconds = settings.SPOTCHECK_OUTAGE_RETRY_AFTER
    log.warning("backing service unreachable: 503", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
    body = error_body(
        code="service_unavailable",
        message=f"The service is briefly unavailable (database or cache unreachable); retry in {seconds} s.",
    )
    response = JsonResponse(body, status=503)
    response["Retry-After"] = str(seconds)
    return response


class OutageMiddleware:
    """503 + Retry-After when the database or cache is unreachable, before or inside the view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None:
            try:
                user.is_authenticated  # noqa: B018  (evaluates the lazy user: session + user rows)
            except Exception as exc:
                if is_outage(exc):
                    return outage_response(exc)
                raise
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_outage(exception):
            return outage_response(exception)
        return None
