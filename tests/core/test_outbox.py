"""No request fails because its background work could not be sent: the work waits in the outbox and the sweep
sends it once the broker is back (fixes, scrapes, exports, zip fills, promotions)."""

import zipfile
from datetime import timedelta
from io import BytesIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from classification.synthetic import picture_bytes
from core.models import TaskOutbox
from core.outbox import outbox_deliver
from sitemaps.models import FixOutbox, ManualFix
from tests.sitemaps.factories import AdvertiserFactory, VehicleFactory, VehicleImageFactory, predict


@pytest.fixture
def picture(db):
    vi = VehicleImageFactory(vehicle=VehicleFactory(advertiser=AdvertiserFactory(slug="acme")))
    predict(vi.image, image_type="Dealer", color="Red")
    return vi


@pytest.mark.django_db(transaction=True)
def test_fix_is_answered_201_while_the_broker_is_down_and_delivered_by_the_sweep(
    api_as, reviewer, picture, broker_unreachable
):
    response = api_as(reviewer).post(
        "/api/v1/fixes/", {"vehicle_image": picture.id, "image_type": "Stock"}, format="json"
    )

    assert response.status_code == 201
    assert ManualFix.objects.count() == 1
    (row,) = TaskOutbox.objects.all()
    assert row.task == "sitemaps.tasks.fix_deliver" and row.attempts == 1 and row.last_error
    assert FixOutbox.objects.get().delivered_at is None

    broker_unreachable.restore()
    assert outbox_deliver(older_than=timedelta(0)) == 1
    assert not TaskOutbox.objects.exists()
    assert FixOutbox.objects.get().delivered_at is not None


@pytest.mark.django_db(transaction=True)
def test_sweep_leaves_the_work_in_place_while_the_broker_is_still_down(api_as, reviewer, picture, broker_unreachable):
    api_as(reviewer).post("/api/v1/fixes/", {"vehicle_image": picture.id, "image_type": "Stock"}, format="json")
    assert outbox_deliver(older_than=timedelta(0)) == 0
    assert TaskOutbox.objects.get().attempts == 2


@pytest.mark.django_db(transaction=True)
def test_scrape_is_answered_202_while_the_broker_is_down_and_its_classification_is_kept(
    api_as, reviewer, broker_unreachable
):
    inventory = {"vehicles": [{"external_id": "X1", "title": "Car", "images": ["https://cdn.example.com/1.jpg"]}]}
    response = api_as(reviewer).post("/api/v1/advertisers/acme/scrapes/", inventory, format="json")
    assert response.status_code == 202
    (row,) = TaskOutbox.objects.all()
    assert (row.task, row.args) == ("sitemaps.tasks.scrape_classify", [response.json()["id"]])


@pytest.mark.django_db(transaction=True)
def test_export_is_answered_202_while_the_broker_is_down(api_as, admin_user, broker_unreachable):
    response = api_as(admin_user).post("/api/v1/exports/", {"attribute": "image_type"}, format="json")
    assert response.status_code == 202
    (row,) = TaskOutbox.objects.all()
    assert (row.task, row.args) == ("classification.export_dataset", [response.json()["id"]])


@pytest.mark.django_db(transaction=True)
def test_zip_fill_is_queued_while_the_broker_is_down(client, admin_user, broker_unreachable):
    from labeling.models import Campaign

    campaign = Campaign.objects.create(name="c", attribute="image_type")
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.jpg", b"not really")
    client.force_login(admin_user)
    response = client.post(
        f"/label/{campaign.pk}/fill/",
        {"source": "zip", "upload": SimpleUploadedFile("p.zip", buffer.getvalue(), content_type="application/zip")},
    )
    assert response.status_code in (200, 302)
    (row,) = TaskOutbox.objects.all()
    assert row.task == "labeling.tasks.campaign_zip_ingest" and row.args[0] == campaign.pk


@pytest.mark.django_db(transaction=True)
def test_promotion_succeeds_while_the_broker_is_down(broker_unreachable):
    from classification import promotion
    from classification.models import ModelVersion

    version = ModelVersion.objects.create(backend="builtin", name="v2", status=ModelVersion.Status.CANDIDATE)
    promotion.model_promote(model_version_id=version.pk)
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.ACTIVE
    (row,) = TaskOutbox.objects.all()
    assert (row.task, row.args) == ("classification.reclassify_plan", [version.pk])


@pytest.mark.django_db(transaction=True)
def test_a_delayed_request_keeps_its_wait_when_the_sweep_sends_it(broker_unreachable, monkeypatch):
    from django.db import transaction

    from classification.tasks.classify import urls_fetch
    from core.outbox import enqueue_on_commit

    with transaction.atomic():
        enqueue_on_commit(urls_fetch, ["https://cdn.example.com/1.jpg"], countdown=120)
    row = TaskOutbox.objects.get()
    assert row.attempts == 1 and abs((row.not_before - row.created_at).total_seconds() - 120) < 1
    sent = []
    monkeypatch.setattr(urls_fetch, "apply_async", lambda args, kwargs, eta=None: sent.append((args, eta)))
    assert outbox_deliver(older_than=timedelta(0)) == 1  # the broker is back
    assert sent == [((["https://cdn.example.com/1.jpg"],), row.not_before)]
    assert not TaskOutbox.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_classify_batch_answers_200_while_the_broker_is_down_and_its_pictures_wait_in_the_outbox(
    api_as, reviewer, broker_unreachable, settings
):
    from classification.models import Image
    from tests.classification.conftest import PictureServer

    pictures = PictureServer()
    pictures.thread.start()
    try:
        settings.SPOTCHECK_FETCH_ALLOW = [f"127.0.0.1:{pictures.httpd.server_address[1]}"]
        settings.SPOTCHECK_CLASSIFY_API_DEADLINE = 1.0
        pictures.serve("/new.jpg", picture_bytes(kind="dealer", color="Blue", width=320, height=240, seed=3))
        response = api_as(reviewer).post("/api/v1/classify/", {"url": pictures.url("/new.jpg")}, format="json")
    finally:
        pictures.httpd.shutdown()
        pictures.httpd.server_close()
    assert response.status_code == 200
    assert response.json()["results"][0]["error"] == "timeout"  # its stage 2 could not be sent in time
    (row,) = TaskOutbox.objects.all()
    assert (row.task, row.args, row.attempts) == ("classification.image_classify", [Image.objects.get().pk], 1)


@pytest.mark.django_db(transaction=True)
def test_an_eager_task_asking_for_a_retry_does_not_fail_the_request(api_as, reviewer, settings):
    """Eager mode (tests, demo) runs the classify API's background retry at once; when it fails again its retry
    has no worker to wait for it, and the request still answers 200 with the URL's error."""
    settings.SPOTCHECK_FETCH_ALLOW = ["127.0.0.1:9"]  # the discard port: nothing listens there
    url = "http://127.0.0.1:9/x.jpg"
    response = api_as(reviewer).post("/api/v1/classify/", {"url": url}, format="json")
    assert response.status_code == 200 and response.json()["results"][0]["error"] == "connection"
    assert not TaskOutbox.objects.exists()
