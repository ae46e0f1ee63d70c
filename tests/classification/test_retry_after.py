"""Every download path waits for a server's ``Retry-After`` (seconds or an HTTP date, capped) through the one
retry policy: a scrape's chunks, the classify API's batches and URLs fetched on the queue. A local server
answers 429 or 503 with the header once, then the picture. (The cloud backends: test_backends, test_azure.)"""

import itertools
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from classification.models import ImageSource
from classification.tasks import classify as tasks
from core.models import TaskOutbox
from core.retry import RETRY
from sitemaps.ingest import advertiser_ensure, inventory_parse, scrape_ingest
from sitemaps.models import Scrape
from tests.classification.test_tasks import run_like_a_worker

from .conftest import Reply

pytestmark = pytest.mark.django_db

# How each test's server says "come back in N seconds", and N.
SPELLINGS = {"seconds": 42, "http-date": 90}


def retry_after_header(spelling: str) -> str:
    seconds = SPELLINGS[spelling]
    if spelling == "seconds":
        return str(seconds)
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


def busy_once(picture_server, path: str, *, status: int, spelling: str, body: bytes) -> str:
    """``path`` answers ``status`` with Retry-After the first time, the picture afterwards; returns its URL."""
    header = retry_after_header(spelling)
    attempts = itertools.count()
    picture_server.routes[path] = lambda _h: (
        Reply(status, b"busy", {"Retry-After": header})
        if next(attempts) == 0
        else Reply(200, body, {"Content-Type": "image/jpeg"})
    )
    return picture_server.url(path)


def the_one_wait(retry_waits, spelling: str) -> float:
    """The policy was asked once to wait for a server, for what it sent (an HTTP date loses a second or two
    to the clock), and waited at least that long; returns the wait."""
    ((asked, waited),) = [w for w in retry_waits if w[0] is not None]
    assert SPELLINGS[spelling] - 5 <= asked <= SPELLINGS[spelling]
    assert asked <= waited <= RETRY.retry_after_cap
    return waited


@pytest.mark.parametrize(("status", "spelling"), [(429, "seconds"), (503, "http-date")])
def test_a_scrape_chunk_is_fetched_again_no_sooner_than_the_servers_retry_after(
    picture_server,
    allow_loopback,
    stock_red_jpeg,
    dealer_blue_jpeg,
    retry_waits,
    django_capture_on_commit_callbacks,
    status,
    spelling,
):
    busy = busy_once(picture_server, "/busy.jpg", status=status, spelling=spelling, body=stock_red_jpeg)
    picture_server.serve("/ok.jpg", dealer_blue_jpeg)
    payload = {"vehicles": [{"external_id": "A", "images": [busy, picture_server.url("/ok.jpg")]}]}
    with django_capture_on_commit_callbacks(execute=True):
        scrape = scrape_ingest(advertiser=advertiser_ensure(slug="busy"), vehicles=inventory_parse(payload=payload))
    scrape.refresh_from_db()
    assert picture_server.statuses("/busy.jpg") == [status, 200]
    assert picture_server.statuses("/ok.jpg") == [200]  # the retry carries only the busy picture
    assert (scrape.status, scrape.done, scrape.failed) == (Scrape.Status.DONE, 2, 0)
    the_one_wait(retry_waits, spelling)


@pytest.mark.parametrize(("status", "spelling"), [(429, "http-date"), (503, "seconds")])
def test_a_classify_batch_answers_the_error_and_fetches_the_url_again_after_its_retry_after(
    api_as, reviewer, picture_server, allow_loopback, stock_red_jpeg, retry_waits, django_capture_on_commit_callbacks,
    status, spelling,
):  # fmt: skip
    url = busy_once(picture_server, "/busy.jpg", status=status, spelling=spelling, body=stock_red_jpeg)
    with django_capture_on_commit_callbacks() as callbacks:
        response = api_as(reviewer).post("/api/v1/classify/", {"urls": [url]}, format="json")
    assert response.status_code == 200 and response.json()["results"][0]["error"] == f"http_{status}"
    waited = the_one_wait(retry_waits, spelling)
    row = TaskOutbox.objects.get()  # durable: a broker outage delays the retry, never drops it
    assert (row.task, row.args) == ("classification.urls_fetch", [[url]])
    assert abs((row.not_before - row.created_at).total_seconds() - waited) < 2
    for callback in callbacks:  # the commit: the retry is sent (eager here: it runs now)
        callback()
    assert picture_server.statuses("/busy.jpg") == [status, 200]
    assert ImageSource.objects.get(url=url).image is not None


def test_a_classify_batch_without_transient_failures_requests_no_retry(
    api_as, reviewer, picture_server, allow_loopback, stock_red_jpeg, django_capture_on_commit_callbacks
):
    picture_server.serve("/ok.jpg", stock_red_jpeg)
    picture_server.routes["/gone.jpg"] = lambda _h: Reply(404, b"", {"Retry-After": "5"})
    urls = [picture_server.url("/ok.jpg"), picture_server.url("/gone.jpg")]
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(reviewer).post("/api/v1/classify/", {"urls": urls}, format="json")
    assert [r["error"] for r in response.json()["results"]] == [None, "http_404"]
    assert picture_server.statuses("/gone.jpg") == [404]  # a 404 is never retried, whatever it says
    assert not TaskOutbox.objects.exists()


@pytest.mark.parametrize(("status", "spelling"), [(429, "seconds"), (503, "http-date")])
def test_urls_fetched_on_the_queue_are_retried_no_sooner_than_the_servers_retry_after(
    picture_server, allow_loopback, stock_red_jpeg, retry_waits, status, spelling
):
    url = busy_once(picture_server, "/busy.jpg", status=status, spelling=spelling, body=stock_red_jpeg)
    run_like_a_worker(tasks.urls_fetch, [url])
    assert picture_server.statuses("/busy.jpg") == [status, 200]
    the_one_wait(retry_waits, spelling)


def test_a_run_waiting_for_a_retry_after_is_not_resumed_as_stalled_before_the_wait(
    picture_server, allow_loopback, stock_red_jpeg, dealer_blue_jpeg, settings, monkeypatch,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    from sitemaps import tasks as sitemap_tasks

    settings.SPOTCHECK_SITEMAP_STALLED_SECONDS = 0  # any run not counting right now would count as stalled
    settings.SPOTCHECK_SITEMAP_CHUNK = 1  # the busy picture's chunk waits; the next one counts after it
    retries, send = [], sitemap_tasks.scrape_chunk_classify.apply_async

    def chunk_send(*args, **options):  # the first run goes ahead; its retry is only recorded
        return retries.append(options) if "countdown" in options else send(*args, **options)

    monkeypatch.setattr(sitemap_tasks.scrape_chunk_classify, "apply_async", chunk_send)
    picture_server.routes["/busy.jpg"] = lambda _h: Reply(429, b"busy", {"Retry-After": "300"})
    picture_server.serve("/ok.jpg", dealer_blue_jpeg)
    payload = {"vehicles": [{"external_id": "A", "images": [picture_server.url(p) for p in ("/busy.jpg", "/ok.jpg")]}]}
    with django_capture_on_commit_callbacks(execute=True):
        scrape = scrape_ingest(advertiser=advertiser_ensure(slug="busy"), vehicles=inventory_parse(payload=payload))
    (retry,) = retries
    assert retry["countdown"] >= 300
    scrape.refresh_from_db()
    assert (scrape.done, scrape.failed, scrape.total) == (1, 0, 2)
    assert sitemap_tasks.scrapes_stalled_resume() == 0  # the chunk is waiting, not lost
    assert picture_server.statuses("/busy.jpg") == [429]
    assert scrape.progressed_at >= scrape.started_at + timedelta(seconds=299)
