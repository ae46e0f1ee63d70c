"""The fault suite on real processes (tests/faults/harness.py): Redis stopped during fixes and scrapes, a fetch
worker SIGKILLed mid-chunk, PostgreSQL restarted under 20 voting threads. No 5xx beyond 503, nothing lost,
nothing counted twice, recovery within 2 minutes. Marked ``faults``; it starts its own PostgreSQL and Redis
on four ports from FAULTS_PORT_BASE (8421-8424 by default) and needs root (PostgreSQL runs as the postgres
user), as CI has."""

import pytest

from tests.faults import harness

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(harness.available() is not None, reason=str(harness.available())),
]


@pytest.fixture(scope="module")
def stack():
    running = harness.Stack().start()
    try:
        yield running
    finally:
        running.stop()


def _assert_held(result: harness.FaultResult):
    assert result.server_errors == 0, result
    assert result.lost == 0, result
    assert result.duplicated == 0, result
    assert result.recovery_seconds is not None and result.recovery_seconds <= harness.RECOVERY_TARGET, result


def test_fixes_and_scrapes_posted_while_redis_is_down_are_answered_and_arrive_once_it_is_back(stack):
    result = harness.redis_down_during_fixes_and_scrapes(stack)
    _assert_held(result)
    assert result.acknowledged == 21 and result.unavailable == 0, result  # 20 fixes + the scrape, no 503 needed


def test_a_scrape_whose_fetch_worker_is_killed_mid_chunk_finishes_with_every_picture_counted_once(stack):
    _assert_held(harness.worker_killed_mid_chunk(stack))


def test_votes_through_a_postgresql_restart_are_kept_once_and_errors_are_503s(stack):
    result = harness.postgres_restarted_under_voting(stack)
    _assert_held(result)
    assert result.acknowledged > 20, result
