"""Classifying a scrape: chunked fan-out through classification's two stages, progress counted once per
picture, failures recorded with their reason, transient errors retried, reused pictures handed to the
Placeholder hook."""

import pytest

from classification import services as classification_services
from classification.services import Classified, UrlCheck
from sitemaps import classify_run
from sitemaps.ingest import inventory_parse, scrape_ingest
from sitemaps.models import Scrape, VehicleImage
from tests.sitemaps.factories import ImageFactory, inventory, predict

pytestmark = pytest.mark.django_db


class FakePipeline:
    """Stands in for classification's two stages: ``urls_check`` answers per URL from a script (a known
    picture, a new one for stage 2, or an error), ``images_classify`` classifies whatever it is given."""

    def __init__(self):
        self.answers: dict[str, list] = {}
        self.calls: list[list[str]] = []
        self.classified: list[list[int]] = []
        self.images: dict[str, int] = {}

    def image_for(self, url: str, *, image_type="Dealer", color="Red"):
        if url not in self.images:
            image = ImageFactory()
            predict(image, image_type=image_type, color=color)
            self.images[url] = image.id
        return self.images[url]

    def urls_check(self, *, urls, deadline=None, record_with=None):
        self.calls.append(list(urls))
        out = {}
        for url in urls:
            script = self.answers.get(url) or [("ok", False)]
            kind, known = script.pop(0) if len(script) > 1 else script[0]
            if kind == "ok":
                out[url] = UrlCheck(url=url, image_id=self.image_for(url), pending=not known)
            else:
                out[url] = UrlCheck(url=url, error=kind, transient=kind == "connection")
        if record_with is not None:
            record_with(out)
        return out

    def images_classify(self, *, image_ids):
        self.classified.append(list(image_ids))
        return {i: Classified(image_id=i, status="classified") for i in image_ids}


@pytest.fixture
def classifier(monkeypatch, settings):
    fake = FakePipeline()
    monkeypatch.setattr(classification_services, "urls_check", fake.urls_check)
    monkeypatch.setattr(classification_services, "images_classify", fake.images_classify)
    monkeypatch.setattr(classification_services, "images_reused_placeholder_apply", lambda image_ids: 0, raising=False)
    monkeypatch.setattr("sitemaps.classify_run.fixes_carry_over", lambda vehicle_image_ids: 0)
    settings.SPOTCHECK_SITEMAP_CHUNK = 2
    return fake


def ingest(advertiser, vehicles, capture):
    with capture(execute=True):
        scrape = scrape_ingest(advertiser=advertiser, vehicles=inventory(vehicles))
    scrape.refresh_from_db()
    return scrape


def test_a_scrape_is_classified_in_chunks_and_counted(advertiser, classifier, django_capture_on_commit_callbacks):
    classifier.answers = {
        "https://cdn.example.com/0/1.jpg": [("ok", True)],
        "https://cdn.example.com/1/0.jpg": [("http_404", None)],
        "https://cdn.example.com/1/2.jpg": [("ok", True)],
    }
    scrape = ingest(advertiser, [3, 3], django_capture_on_commit_callbacks)
    assert len(classifier.calls) == 3  # 6 pictures in chunks of 2
    # The 3 new pictures went to stage 2 (one task per chunk); the 2 known ones were counted by stage 1.
    assert sorted(i for batch in classifier.classified for i in batch) == sorted(
        classifier.images[f"https://cdn.example.com/{i}/{p}.jpg"] for i, p in ((0, 0), (0, 2), (1, 1))
    )
    assert (scrape.status, scrape.total, scrape.done, scrape.from_cache, scrape.failed) == ("done", 6, 5, 2, 1)
    assert scrape.started_at and scrape.finished_at
    failed = VehicleImage.objects.get(status="failed")
    assert (failed.url, failed.error, failed.image) == ("https://cdn.example.com/1/0.jpg", "http_404", None)
    assert VehicleImage.objects.filter(status="done", image__isnull=False).count() == 5


def test_a_chunk_run_twice_is_counted_once(advertiser, classifier, django_capture_on_commit_callbacks):
    scrape = ingest(advertiser, [2], django_capture_on_commit_callbacks)
    ids = list(VehicleImage.objects.values_list("id", flat=True))
    pictures = [(image_id, ids) for image_id in classifier.images.values()]
    classify_run.scrape_chunk_fetch(scrape_id=scrape.id, vehicle_image_ids=ids)
    Scrape.objects.filter(id=scrape.id).update(status="running")  # even if it were still open
    classify_run.scrape_chunk_fetch(scrape_id=scrape.id, vehicle_image_ids=ids)
    classify_run.scrape_pictures_classify(scrape_id=scrape.id, pictures=pictures)
    scrape.refresh_from_db()
    assert (scrape.done, scrape.failed, scrape.total) == (2, 0, 2)


def test_connection_errors_are_retried_then_succeed(advertiser, classifier, django_capture_on_commit_callbacks):
    url = "https://cdn.example.com/0/0.jpg"
    classifier.answers = {url: [("connection", None), ("connection", None), ("ok", False)]}
    scrape = ingest(advertiser, [1], django_capture_on_commit_callbacks)
    assert [c for c in classifier.calls] == [[url]] * 3
    assert (scrape.status, scrape.done, scrape.failed) == ("done", 1, 0)


def test_connection_errors_give_up_after_the_cap(advertiser, classifier, settings, django_capture_on_commit_callbacks):
    settings.SPOTCHECK_SITEMAP_FETCH_RETRIES = 2
    classifier.answers = {"https://cdn.example.com/0/0.jpg": [("connection", None)]}
    scrape = ingest(advertiser, [1], django_capture_on_commit_callbacks)
    assert len(classifier.calls) == 3  # first try + 2 retries
    assert (scrape.status, scrape.done, scrape.failed) == ("failed", 0, 1)  # nothing could be classified
    assert VehicleImage.objects.get().error == "connection"


def test_an_empty_inventory_finishes_at_once(advertiser, classifier, django_capture_on_commit_callbacks):
    scrape = ingest(advertiser, [0, 0], django_capture_on_commit_callbacks)
    assert (scrape.status, scrape.total) == ("done", 0)


def test_the_same_picture_on_many_vehicles_goes_to_the_placeholder_hook(
    advertiser, classifier, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.SPOTCHECK_SITEMAP_REUSED_MIN_VEHICLES = 3
    handed = []
    monkeypatch.setattr(
        classification_services,
        "images_reused_placeholder_apply",
        lambda image_ids: handed.append(sorted(image_ids)) or 1,
    )
    card = "https://cdn.example.com/coming-soon.jpg"
    payload = {
        "vehicles": [
            {"external_id": f"R{i}", "images": [f"https://cdn.example.com/r{i}.jpg"] + ([card] if i < 3 else [])}
            for i in range(5)
        ]
    }
    with django_capture_on_commit_callbacks(execute=True):
        scrape_ingest(advertiser=advertiser, vehicles=inventory_parse(payload=payload))
    assert handed == [[classifier.images[card]]]


def test_a_run_mostly_placeholder_or_none_is_flagged(
    client, reviewer, advertiser, classifier, django_capture_on_commit_callbacks
):
    for i in range(6):
        for p in range(2):
            classifier.image_for(f"https://cdn.example.com/{i}/{p}.jpg", image_type="" if i < 5 else "Dealer", color="")
    scrape = ingest(advertiser, [2] * 6, django_capture_on_commit_callbacks)
    assert scrape.ml_failures == 10
    client.force_login(reviewer)
    assert "classifier failed to respond" in client.get("/sitemaps/").content.decode()
    assert "the classifier probably failed to respond" in client.get(f"/sitemaps/{advertiser.slug}/").content.decode()


def test_a_run_that_stopped_counting_is_resumed_and_finishes(
    advertiser, classifier, monkeypatch, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from sitemaps import tasks

    dispatched = []
    # The run's chunks are lost (a worker died holding them): nothing is classified.
    monkeypatch.setattr(tasks.scrape_chunk_classify, "delay", lambda *args: dispatched.append(args))
    scrape = ingest(advertiser, [3], django_capture_on_commit_callbacks)
    assert dispatched and scrape.status == "running" and scrape.done == 0
    monkeypatch.undo()
    monkeypatch.setattr(classification_services, "urls_check", classifier.urls_check)
    monkeypatch.setattr(classification_services, "images_classify", classifier.images_classify)
    monkeypatch.setattr(classification_services, "images_reused_placeholder_apply", lambda image_ids: 0, raising=False)
    monkeypatch.setattr("sitemaps.classify_run.fixes_carry_over", lambda vehicle_image_ids: 0)

    assert tasks.scrapes_stalled_resume() == 0  # silent for less than the limit: left alone
    Scrape.objects.filter(id=scrape.id).update(progressed_at=timezone.now() - timedelta(hours=1))
    assert tasks.scrapes_stalled_resume() == 1
    scrape.refresh_from_db()
    assert (scrape.status, scrape.done, scrape.total) == ("done", 3, 3)
    assert tasks.scrapes_stalled_resume() == 0  # finished runs are never resumed


@pytest.mark.parametrize("status", ["http_429", "http_500", "http_503"])
def test_429_and_5xx_are_retried_on_the_scrape_path(advertiser, classifier, status, django_capture_on_commit_callbacks):
    url = "https://cdn.example.com/0/0.jpg"
    classifier.answers = {url: [(status, None), ("ok", False)]}
    scrape = ingest(advertiser, [1], django_capture_on_commit_callbacks)
    assert classifier.calls == [[url]] * 2
    assert (scrape.status, scrape.done, scrape.failed) == ("done", 1, 0)


@pytest.mark.parametrize("status", ["http_404", "http_403", "http_410"])
def test_other_4xx_are_never_retried_on_the_scrape_path(
    advertiser, classifier, status, django_capture_on_commit_callbacks
):
    classifier.answers = {"https://cdn.example.com/0/0.jpg": [(status, None), ("ok", False)]}
    scrape = ingest(advertiser, [1], django_capture_on_commit_callbacks)
    assert len(classifier.calls) == 1
    assert (scrape.done, scrape.failed) == (0, 1)


def test_a_chunk_waits_while_stage_two_is_behind_and_the_wait_is_not_an_attempt(
    advertiser, classifier, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from core import broker

    settings.SPOTCHECK_CLASSIFY_CHUNK, settings.SPOTCHECK_CLASSIFY_AHEAD = 50, 400
    settings.SPOTCHECK_CLASSIFY_AHEAD_WAIT = 2.0
    settings.SPOTCHECK_SITEMAP_FETCH_RETRIES = 1
    url = "https://cdn.example.com/0/0.jpg"
    classifier.answers = {url: [("connection", None), ("ok", False)]}
    answers = [8, 9, 7, 0]  # messages (50 pictures each) waiting in the classify queue, as the broker says in turn
    asked = []

    def waiting(name, app=None):
        asked.append((name, len(classifier.calls)))
        return answers.pop(0)

    waits = []
    monkeypatch.setattr(broker, "queue_waiting", waiting)
    monkeypatch.setattr(classify_run, "scrape_retry_wait", lambda scrape_id, seconds: waits.append(seconds))
    scrape = ingest(advertiser, [1], django_capture_on_commit_callbacks)
    # 400 and 450 pictures ahead held the chunk back before any download; 350 let it through. Its connection
    # error is retried once more (the waits did not use up the one retry), and the retry fetches at once.
    assert asked == [("classify", 0), ("classify", 0), ("classify", 0), ("classify", 1)]
    # Held back twice: the second wait is longer (2 s, then 4 s, each with up to half again of jitter); the
    # stalled-run sweep was told each time. The third is the connection error's backoff.
    assert 2.0 <= waits[0] <= 3.0 and 4.0 <= waits[1] <= 6.0 and len(waits) == 3
    assert classifier.calls == [[url], [url]]
    assert (scrape.status, scrape.done, scrape.failed) == ("done", 1, 0)
