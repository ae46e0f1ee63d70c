"""The download pool of a batch: every item done once, in order; few threads while answers come at once,
all SPOTCHECK_FETCH_CONCURRENCY of them while answers are slow; an error raised once every thread stopped."""

import threading
import time

import pytest

from classification import services


class Tracker:
    """A stand-in download that takes ``seconds`` and records how many ran at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.now = self.peak = 0

    def __call__(self, item: int) -> int:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            if self.seconds:
                time.sleep(self.seconds)
            return item * 2
        finally:
            with self.lock:
                self.now -= 1


def test_slow_answers_get_every_thread_the_setting_allows(settings):
    settings.SPOTCHECK_FETCH_CONCURRENCY = 8
    work = Tracker(seconds=0.05)  # a distant CDN
    started = time.monotonic()
    assert services._each_in_pool(list(range(64)), work) == [i * 2 for i in range(64)]
    assert work.peak == 8
    # 64 answers of 50 ms, 8 at a time, after a ramp of a few round trips: well under 64 / 2 of them.
    assert time.monotonic() - started < 1.2


def test_answers_that_come_at_once_take_few_threads(settings):
    settings.SPOTCHECK_FETCH_CONCURRENCY = 16
    work = Tracker(seconds=0)
    assert services._each_in_pool(list(range(500)), work) == [i * 2 for i in range(500)]
    assert work.peak <= services._FIRST_THREADS


def test_a_batch_smaller_than_the_pool_and_an_empty_one(settings):
    settings.SPOTCHECK_FETCH_CONCURRENCY = 16
    assert services._each_in_pool([3], Tracker(seconds=0.01)) == [6]
    assert services._each_in_pool([], Tracker(seconds=0.01)) == []


def test_an_error_is_raised_once_every_item_was_tried(settings):
    settings.SPOTCHECK_FETCH_CONCURRENCY = 4
    done = []

    def work(item: int) -> int:
        time.sleep(0.01)
        if item == 3:
            raise ValueError("broken")
        done.append(item)
        return item

    with pytest.raises(ValueError, match="broken"):
        services._each_in_pool(list(range(20)), work)
    assert sorted(done) == [i for i in range(20) if i != 3]
