"""A scrape classified through the cascade reports, in its status, the pictures sent to each backend and
the estimated cost (the paid backend is the local fake Azure; the pictures come from the live server)."""

from urllib.parse import urlsplit

import pytest
from django.test import override_settings

from classification.models import ModelVersion
from sitemaps.ingest import advertiser_ensure, inventory_parse, scrape_ingest
from tests.fakes.azure import FakeAzureVision, answer


@pytest.fixture
def azure(settings):
    fake = FakeAzureVision(key="k", responder=lambda _p: answer(tags=[("car", 0.95)], background="Grey")).start()
    settings.SPOTCHECK_AZURE_VISION_ENDPOINT = fake.endpoint
    settings.SPOTCHECK_AZURE_VISION_KEY = "k"
    try:
        yield fake
    finally:
        fake.stop()


@pytest.mark.django_db(transaction=True)
def test_scrape_status_reports_pictures_per_backend_and_cost(
    live_server, api_as, role_groups, make_user, azure, settings
):
    from core.roles import Role

    settings.SPOTCHECK_FETCH_ALLOW = [f"127.0.0.1:{urlsplit(live_server.url).port}"]  # the demo pictures, nothing else
    settings.SPOTCHECK_CLASSIFIER_BACKEND = "cascade"
    # Every picture below 1.0 goes on: the builtin never scores 1.0, so each is sent to the paid backend.
    ModelVersion.objects.create(
        name="cascade-all",
        backend="cascade",
        status=ModelVersion.Status.ACTIVE,
        params={"local": "builtin", "paid": "azure", "thresholds": {"image_type": 1.0}},
    )
    base = f"{live_server.url}/sitemaps/demo-pictures"
    payload = {"vehicles": [{"external_id": "A", "images": [f"{base}/dealer-red-1.jpg", f"{base}/dealer-blue-2.jpg"]}]}
    with override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        scrape = scrape_ingest(advertiser=advertiser_ensure(slug="paid"), vehicles=inventory_parse(payload=payload))
    body = api_as(make_user("paid-rev", Role.REVIEWER)).get(f"/api/v1/scrapes/{scrape.id}/").json()
    assert body["status"] == "done"
    assert body["usage"] == {"pictures": {"azure": 2, "builtin": 2}, "estimated_cost": 0.002}
    assert len(azure.seen) == 2
