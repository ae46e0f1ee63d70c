"""The one retry policy of every task: which errors are transient, how long to wait, how often to try.

Transient: the infrastructure briefly unreachable (database, cache, broker, storage, a socket) and, from a
remote server, 429 and 5xx. Any other 4xx is the request's fault and is never retried. The wait is capped
exponential backoff with full jitter, or the server's ``Retry-After`` (seconds or an HTTP date, capped) when it
sent one. ``PolicyTask`` is the Celery app's task class, so every task retries this way and no other.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from celery import Task


def _infrastructure_errors() -> tuple[type[BaseException], ...]:
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerError

    errors: list[type[BaseException]] = [ConnectionError, TimeoutError, OperationalError, InterfaceError, BrokerError]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    else:
        errors += [RedisConnectionError, RedisTimeoutError]
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        pass
    else:
        errors.append(BotoConnectionError)
    return tuple(errors)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_base: float = 10.0  # seconds before the first retry (at most: full jitter)
    # Both caps stay under the broker's visibility timeout (360 s): a retry waiting longer would be handed out
    # a second time.
    backoff_cap: float = 300.0
    retry_after_cap: float = 300.0  # a server asking for longer is waited for this long

    @staticmethod
    def status_transient(status: int) -> bool:
        """429 and 5xx may go away; every other status will not."""
        return status == 429 or 500 <= status <= 599

    def reason_transient(self, reason: str) -> bool:
        """For a fetch failure reason (``timeout``, ``connection``, ``dns``, ``http_<status>``, …)."""
        if reason in {"timeout", "connection", "dns"}:
            return True
        if reason.startswith("http_") and reason[5:].isdigit():
            return self.status_transient(int(reason[5:]))
        return False

    @property
    def transient_errors(self) -> tuple[type[BaseException], ...]:
        return _infrastructure_errors()

    def retry_after_seconds(self, value: str | None, *, now: datetime | None = None) -> float | None:
        """A ``Retry-After`` header value in seconds (delta-seconds or HTTP date), capped; None if absent or
        unreadable."""
        if value is None or not str(value).strip():
            return None
        value = str(value).strip()
        if value.isdigit():
            seconds = float(value)
        else:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when is None:
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - (now or datetime.now(UTC))).total_seconds()
        return min(max(seconds, 0.0), self.retry_after_cap)

    def countdown(self, retries: int, *, retry_after: float | None = None) -> float:
        """Seconds before retry number ``retries + 1``: full-jitter backoff, but never before the server's
        ``Retry-After`` (seconds; a longer one is waited for ``retry_after_cap``)."""
        backoff = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**retries))
        if retry_after is None:
            return backoff
        return max(backoff, min(float(retry_after), self.retry_after_cap))


RETRY = RetryPolicy()


class PolicyTask(Task):
    """Every task's base: retried on the policy's transient errors with its backoff, ``Retry-After`` honoured
    when the error carries one (``exc.retry_after``, seconds). Tasks stay safe to run twice."""

    max_retries = RETRY.max_retries
    retry_backoff = RETRY.backoff_base
    retry_backoff_max = RETRY.backoff_cap
    retry_jitter = True

    @property
    def autoretry_for(self):
        return RETRY.transient_errors

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, **options):
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None and eta is None:
            countdown = RETRY.countdown(self.request.retries, retry_after=retry_after)
        return super().retry(args=args, kwargs=kwargs, exc=exc, throw=throw, eta=eta, countdown=countdown, **options)
