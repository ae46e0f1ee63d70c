"""Celery tasks: chunks on the fetch queue hand new pictures to the classify queue; transient failures are
retried alone with capped backoff; running a task twice changes nothing."""

import itertools

import pytest
from django.conf import settings

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


def test_fetching_and_classifying_run_on_separate_queues():
    routes = settings.CELERY_TASK_ROUTES
    assert routes["classification.urls_classify_chunk"]["queue"] == "fetch"
    assert routes["classification.image_classify"]["queue"] == "classify"
    assert tasks.image_classify.time_limit and tasks.urls_classify_chunk.soft_time_limit


@pytest.mark.django_db
def test_batch_is_chunked_and_new_pictures_are_classified_on_the_classify_queue(
    picture_server,
    allow_loopback,
    classifier_runs,
    stock_red_jpeg,
    dealer_blue_jpeg,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    sent = []
    original = tasks.image_classify.delay
    monkeypatch.setattr(tasks.image_classify, "delay", lambda *a, **k: (sent.append(a), original(*a, **k))[1])
    for i in range(5):
        picture_server.serve(f"/{i}.jpg", stock_red_jpeg if i % 2 else dealer_blue_jpeg)
    urls = [picture_server.url(f"/{i}.jpg") for i in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        tasks.urls_classify_batch.delay(urls, chunk_size=2)
    assert Image.objects.count() == 2
    # A picture still pending when a later chunk sees it is sent again; the task is idempotent.
    assert len(set(sent)) == 2 and len(classifier_runs) == 2
    assert Image.objects.filter(classified_at__isnull=True).count() == 0
    assert Prediction.objects.count() == 4
    assert ImageSource.objects.filter(image__isnull=False).count() == 5
    # Originals kept for the classify queue are gone once classified.
    from django.core.files.storage import default_storage

    assert not any(default_storage.exists(services._original_path(i.sha256)) for i in Image.objects.all())
    # Running the whole batch again downloads (no validators here) but classifies nothing.
    with django_capture_on_commit_callbacks(execute=True):
        tasks.urls_classify_batch.delay(urls, chunk_size=2)
    assert len(classifier_runs) == 2


@pytest.mark.django_db
def test_transient_url_failures_are_retried_alone(picture_server, allow_loopback, stock_red_jpeg, monkeypatch):
    monkeypatch.setattr(tasks, "backoff", lambda retries, retry_after=None: 0)
    attempts = itertools.count()

    def flaky(_headers):
        return Reply(503, b"busy") if next(attempts) < 2 else Reply(200, stock_red_jpeg, {"Content-Type": "image/jpeg"})

    picture_server.routes["/flaky.jpg"] = flaky
    picture_server.routes["/gone.jpg"] = lambda _h: Reply(404, b"")
    picture_server.serve("/ok.jpg", stock_red_jpeg)
    urls = [picture_server.url(p) for p in ("/flaky.jpg", "/gone.jpg", "/ok.jpg")]
    run_like_a_worker(tasks.urls_classify_chunk, urls)
    assert picture_server.statuses("/flaky.jpg") == [503, 503, 200]
    assert picture_server.statuses("/gone.jpg") == [404]  # permanent: not retried
    assert picture_server.statuses("/ok.jpg") == [200]
    assert ImageSource.objects.get(url=urls[0]).image is not None


@pytest.mark.django_db
def test_a_transiently_failing_classifier_is_retried_then_left_without_value(stock_red_jpeg, monkeypatch):
    monkeypatch.setattr(tasks, "backoff", lambda retries, retry_after=None: 0)
    image = services._image_store_pending(sha256="a" * 64, data=stock_red_jpeg)
    calls = []

    def failing(self, picture):
        calls.append(1)
        raise ClassifierError("model server busy", transient=True)

    monkeypatch.setattr(BuiltinClassifier, "classify", failing)
    with pytest.raises(ClassifierError):
        run_like_a_worker(tasks.image_classify, image.pk)
    assert len(calls) == RETRY.max_retries + 1
    image.refresh_from_db()
    assert image.classified_at is None and not Prediction.objects.filter(image=image).exists()


@pytest.mark.django_db
def test_a_permanently_failing_classifier_is_not_retried(stock_red_jpeg, monkeypatch):
    image = services._image_store_pending(sha256="b" * 64, data=stock_red_jpeg)
    calls = []

    def refusing(self, picture):
        calls.append(1)
        raise ClassifierError("model refuses this picture", transient=False)

    monkeypatch.setattr(BuiltinClassifier, "classify", refusing)
    result = tasks.image_classify.apply(args=(image.pk,))
    assert len(calls) == 1 and result.successful() and result.result is False


@pytest.mark.django_db
def test_classify_task_is_idempotent(stock_red_jpeg, classifier_runs):
    image = services._image_store_pending(sha256="c" * 64, data=stock_red_jpeg)
    assert tasks.image_classify.apply(args=(image.pk,)).result is True
    assert tasks.image_classify.apply(args=(image.pk,)).result is False
    assert len(classifier_runs) == 1
