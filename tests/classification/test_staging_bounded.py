"""Stage 1 stages a batch's new pictures while its downloads go on, in small batches, so a fetch process holds
a bounded amount of downloaded bytes (not every body of a 200-URL chunk at once); every picture is staged once
whatever the batching, and an error while staging stops the batch without leaving a download thread waiting."""

import sys
import time
import traceback

import pytest
from django.core.files.storage import default_storage

from classification import services
from classification.models import Image
from classification.synthetic import picture_bytes

pytestmark = pytest.mark.django_db

PICTURES = 24


@pytest.fixture
def distinct_pictures(picture_server, allow_loopback):
    """24 URLs, each a different small JPEG (the server answers each only after a short pause)."""
    bodies = [picture_bytes(kind="dealer", color="Blue", width=160, height=120, seed=100 + i) for i in range(PICTURES)]
    for i, body in enumerate(bodies):
        picture_server.serve(f"/p{i}.jpg", body)
    return [picture_server.url(f"/p{i}.jpg") for i in range(PICTURES)], bodies


class StageRecorder:
    """Wraps ``_images_stage``: how many bodies each call staged."""

    def __init__(self, monkeypatch, *, fail_on_call: int | None = None, seconds: float = 0.0) -> None:
        self.calls: list[int] = []
        self.fail_on_call = fail_on_call
        self.seconds = seconds  # a slow storage: the downloads meanwhile pile up, as far as they may
        self.real = services._images_stage
        monkeypatch.setattr(services, "_images_stage", self)

    def __call__(self, bodies):
        self.calls.append(len(bodies))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise RuntimeError("storage is down")
        time.sleep(self.seconds)
        return self.real(bodies)


def test_new_pictures_are_staged_in_batches_while_the_downloads_go_on(monkeypatch, settings, distinct_pictures):
    urls, bodies = distinct_pictures
    size = max(len(b) for b in bodies)
    settings.SPOTCHECK_FETCH_CONCURRENCY = 4
    monkeypatch.setattr(services, "_STAGE_BATCH_BYTES", 1)  # stage whatever waits at each look
    monkeypatch.setattr(services, "_STAGE_AHEAD_BYTES", 2 * size)  # a download waits behind two bodies
    recorder = StageRecorder(monkeypatch, seconds=0.1)

    checks = services.urls_check(urls=urls)

    assert len(recorder.calls) > 1, "staged only once, after every download"
    assert sum(recorder.calls) == PICTURES
    # Never more than the bodies allowed to wait plus one handed over by each download thread meanwhile.
    assert max(recorder.calls) <= 2 + settings.SPOTCHECK_FETCH_CONCURRENCY
    assert all(c.pending and c.image_id and not c.error for c in checks.values())
    images = Image.objects.filter(pk__in=[c.image_id for c in checks.values()])
    assert images.count() == PICTURES
    assert all(default_storage.exists(services._original_path(i.sha256)) for i in images)


def test_with_room_to_spare_a_batch_is_staged_in_one_go(monkeypatch, distinct_pictures):
    urls, _bodies = distinct_pictures
    recorder = StageRecorder(monkeypatch)  # small pictures: far under the batch size

    checks = services.urls_check(urls=urls + urls[:3])  # repeated URLs are one download each

    assert recorder.calls == [PICTURES]
    assert len({c.image_id for c in checks.values()}) == PICTURES


def test_an_error_while_staging_stops_the_batch_and_leaves_no_download_waiting(
    monkeypatch, settings, picture_server, distinct_pictures
):
    urls, bodies = distinct_pictures
    settings.SPOTCHECK_FETCH_CONCURRENCY = 4
    monkeypatch.setattr(services, "_STAGE_BATCH_BYTES", 1)
    monkeypatch.setattr(services, "_STAGE_AHEAD_BYTES", max(len(b) for b in bodies))
    recorder = StageRecorder(monkeypatch, fail_on_call=2)

    with pytest.raises(RuntimeError, match="storage is down"):
        services.urls_check(urls=urls)

    # The URLs after the failure were not downloaded (a few were in flight when it happened), and no download
    # thread is left waiting to hand a body over: the same pool serves the next batch.
    requested = sum(len(picture_server.statuses(f"/p{i}.jpg")) for i in range(PICTURES))
    assert requested < PICTURES
    assert _threads_left_in("hand_over", seconds=5) == []
    recorder.fail_on_call = None
    checks = services.urls_check(urls=urls)
    assert all(c.image_id and not c.error for c in checks.values())


def _threads_left_in(function: str, *, seconds: float) -> list[int]:
    """Threads whose stack is still in ``function`` after up to ``seconds`` (a released thread leaves at once)."""
    ends_at = time.monotonic() + seconds
    while True:
        left = [
            ident
            for ident, frame in sys._current_frames().items()
            if any(f.f_code.co_name == function for f, _line in traceback.walk_stack(frame))
        ]
        if not left or time.monotonic() > ends_at:
            return left
        time.sleep(0.01)
