"""The pipeline: stage 1 (download and key) never decodes; stage 2 (decode, classify, thumbnail, store) runs
on the classify queue for the API's batches; a transiently failing backend is retried; a task run twice
changes nothing."""

import itertools

import pytest
from django.conf import settings
from django.core.files.storage import default_storage

from classification import services
from classification.classifiers import ClassifierError
from classification.classifiers.builtin import BuiltinClassifier
from classification.models import Image, ImageSource, Prediction
from classification.tasks import classify as tasks
from core.retry import RETRY

from .conftest import Reply


def run_like_a_worker(task, *args):
    """Eager tasks propagate Retry; a worker would run the retry signature again: do the same."""
    from celery.exceptions import Retry

    signature = task.signature(args)
    while True:
        try:
            return signature.apply(throw=True)
        except Retry as retry:
            signature = retry.sig


def staged(picture_server, path: str, data: bytes) -> Image:
    """A new picture after stage 1: row created unclassified, bytes staged."""
    picture_server.serve(path, data)
    (check,) = services.urls_check(urls=[picture_server.url(path)]).values()
    assert check.pending
    return Image.objects.get(pk=check.image_id)


def test_decoding_runs_on_the_classify_queue_and_downloads_elsewhere():
    routes = settings.CELERY_TASK_ROUTES
    assert routes["sitemaps.tasks.scrape_chunk_classify"]["queue"] == "fetch"
    assert routes["sitemaps.tasks.scrape_pictures_classify"]["queue"] == "classify"
    assert routes["classification.image_classify"]["queue"] == "classify"
    assert "classification.urls_classify_chunk" not in routes and "classification.urls_classify_batch" not in routes
    assert routes["classification.urls_fetch"]["queue"] == "fetch"
    assert routes["classification.bucket_object_classify"]["queue"] == "classify"  # it decodes
    assert tasks.image_classify.time_limit and tasks.image_classify.soft_time_limit


@pytest.mark.django_db
def test_the_fetch_stage_keys_and_stages_new_pictures_without_decoding(
    picture_server, allow_loopback, stock_red_jpeg, dealer_blue_jpeg, decodes, classifier_runs
):
    picture_server.serve("/a.jpg", stock_red_jpeg)
    picture_server.serve("/b.jpg", dealer_blue_jpeg)
    picture_server.serve("/a-again.jpg", stock_red_jpeg)
    urls = [picture_server.url(p) for p in ("/a.jpg", "/b.jpg", "/a-again.jpg")]
    checks = services.urls_check(urls=urls)
    assert decodes == [] and classifier_runs == []
    assert all(c.pending and c.image_id for c in checks.values())
    assert checks[urls[0]].image_id == checks[urls[2]].image_id  # one picture, keyed by its bytes
    images = Image.objects.all()
    assert len(images) == 2 and all(i.classified_at is None and not i.thumbnail for i in images)
    assert all(default_storage.exists(services._original_path(i.sha256)) for i in images)


@pytest.mark.django_db
def test_a_304_recheck_decodes_nothing(picture_server, allow_loopback, stock_red_jpeg, decodes):
    etag = '"v1"'

    def conditional(headers):
        if headers.get("if-none-match") == etag:
            return Reply(304, b"", {"ETag": etag})
        return Reply(200, stock_red_jpeg, {"Content-Type": "image/jpeg", "ETag": etag})

    picture_server.routes["/c.jpg"] = conditional
    url = picture_server.url("/c.jpg")
    services.urls_classify(urls=[url])
    decodes.clear()
    (check,) = services.urls_check(urls=[url]).values()
    assert (check.status, check.pending, decodes) == (304, False, [])
    assert check.image_id == Image.objects.get().pk


@pytest.mark.django_db
def test_api_batches_are_fetched_then_classified_on_the_classify_queue(
    api_as, reviewer, picture_server, allow_loopback, stock_red_jpeg, dealer_blue_jpeg, monkeypatch, classifier_runs
):
    sent, decoded_in_stage_1 = [], []
    original_delay, original_check = tasks.image_classify.delay, services.urls_check

    def check_spy(**kwargs):
        result = original_check(**kwargs)
        decoded_in_stage_1.append(Image.objects.filter(classified_at__isnull=False).count())
        return result

    monkeypatch.setattr(services, "urls_check", check_spy)
    monkeypatch.setattr(tasks.image_classify, "delay", lambda *a: (sent.append(a), original_delay(*a))[1])
    for i in range(5):
        picture_server.serve(f"/{i}.jpg", stock_red_jpeg if i % 2 else dealer_blue_jpeg)
    urls = [picture_server.url(f"/{i}.jpg") for i in range(5)]
    results = api_as(reviewer).post("/api/v1/classify/", {"urls": urls}, format="json").json()["results"]
    assert decoded_in_stage_1 == [0]  # nothing classified when the fetch stage returned
    assert sorted(sent) == sorted((i.pk,) for i in Image.objects.all()) and len(sent) == 2
    assert [r["image_type"] for r in results] == ["Dealer", "Stock", "Dealer", "Stock", "Dealer"]
    assert len(classifier_runs) == 2 and Prediction.objects.count() == 4
    assert not any(default_storage.exists(services._original_path(i.sha256)) for i in Image.objects.all())
    assert ImageSource.objects.filter(image__isnull=False).count() == 5
    again = api_as(reviewer).post("/api/v1/classify/", {"urls": urls}, format="json").json()["results"]
    assert len(sent) == 2 and len(classifier_runs) == 2 and all(r["cached"] for r in again)


@pytest.mark.django_db
def test_bytes_that_pass_the_header_check_but_do_not_decode_are_refused_by_stage_2(
    api_as, reviewer, picture_server, allow_loopback, stock_red_jpeg
):
    truncated = stock_red_jpeg[: len(stock_red_jpeg) // 2]
    picture_server.serve("/half.jpg", truncated)
    url = picture_server.url("/half.jpg")
    (result,) = api_as(reviewer).post("/api/v1/classify/", {"url": url}, format="json").json()["results"]
    assert (result["error"], result["image_type"], result["source"]) == ("bad_image", "Placeholder", "default")
    assert not Image.objects.exists()
    source = ImageSource.objects.get(url=url)
    assert (source.image, source.error, source.etag) == (None, "bad_image", "")


@pytest.mark.django_db
def test_transient_url_failures_are_retried_alone(picture_server, allow_loopback, stock_red_jpeg):
    attempts = itertools.count()

    def flaky(_headers):
        return Reply(503, b"busy") if next(attempts) < 2 else Reply(200, stock_red_jpeg, {"Content-Type": "image/jpeg"})

    picture_server.routes["/flaky.jpg"] = flaky
    picture_server.routes["/gone.jpg"] = lambda _h: Reply(404, b"")
    picture_server.serve("/ok.jpg", stock_red_jpeg)
    urls = [picture_server.url(p) for p in ("/flaky.jpg", "/gone.jpg", "/ok.jpg")]
    run_like_a_worker(tasks.urls_fetch, urls)
    assert picture_server.statuses("/flaky.jpg") == [503, 503, 200]
    assert picture_server.statuses("/gone.jpg") == [404]  # permanent: not retried
    assert picture_server.statuses("/ok.jpg") == [200]
    assert ImageSource.objects.get(url=urls[0]).image is not None


@pytest.mark.django_db
def test_a_transiently_failing_classifier_is_retried_then_left_without_value(
    picture_server, allow_loopback, stock_red_jpeg, monkeypatch
):
    image = staged(picture_server, "/t.jpg", stock_red_jpeg)
    calls = []

    def failing(self, picture):
        calls.append(1)
        raise ClassifierError("model server busy", transient=True)

    monkeypatch.setattr(BuiltinClassifier, "classify", failing)
    assert run_like_a_worker(tasks.image_classify, image.pk).result is False
    assert len(calls) == RETRY.max_retries + 1
    image.refresh_from_db()
    assert image.classified_at is None and not Prediction.objects.filter(image=image).exists()
    assert image.thumbnail  # an API request waiting for it is answered (with the defaults)


@pytest.mark.django_db
def test_a_permanently_failing_classifier_is_not_retried(picture_server, allow_loopback, stock_red_jpeg, monkeypatch):
    image = staged(picture_server, "/p.jpg", stock_red_jpeg)
    calls = []

    def refusing(self, picture):
        calls.append(1)
        raise ClassifierError("model refuses this picture", transient=False)

    monkeypatch.setattr(BuiltinClassifier, "classify", refusing)
    result = tasks.image_classify.apply(args=(image.pk,))
    assert len(calls) == 1 and result.successful() and result.result is False


@pytest.mark.django_db
def test_classify_task_is_idempotent(picture_server, allow_loopback, stock_red_jpeg, classifier_runs):
    image = staged(picture_server, "/i.jpg", stock_red_jpeg)
    assert tasks.image_classify.apply(args=(image.pk,)).result is True
    assert tasks.image_classify.apply(args=(image.pk,)).result is False
    assert len(classifier_runs) == 1
    assert not default_storage.exists(services._original_path(image.sha256))


@pytest.mark.django_db
def test_urls_announced_from_outside_are_keyed_on_the_fetch_queue_and_classified_on_the_classify_queue(
    picture_server, allow_loopback, stock_red_jpeg, decodes, django_capture_on_commit_callbacks, monkeypatch
):
    picture_server.serve("/blob.jpg", stock_red_jpeg)
    url = picture_server.url("/blob.jpg")
    sent: list[int] = []
    monkeypatch.setattr(tasks.image_classify, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_like_a_worker(tasks.urls_fetch, [url]).result == 1
    assert decodes == []  # stage 1 only
    image = ImageSource.objects.get(url=url).image
    assert sent == [image.pk] and image.classified_at is None
    assert run_like_a_worker(tasks.image_classify, image.pk).result is True
    assert Prediction.objects.get(image=image, attribute="image_type").value == "Stock"
