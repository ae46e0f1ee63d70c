"""Ingestion: POST an inventory, 202 with the scrape; 400 naming the vehicle and the reason; vehicles missing
from a scrape become inactive; bulk writes (no query per vehicle)."""

import pytest

from sitemaps.models import Advertiser, Scrape, Vehicle, VehicleImage
from tests.support import needs_postgres

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_classification(monkeypatch):
    queued = []
    monkeypatch.setattr("sitemaps.tasks.scrape_classify.delay", queued.append)
    return queued


def inventory(n: int, images: int = 3, prefix: str = "cdn") -> dict:
    return {
        "vehicles": [
            {
                "external_id": f"X{i}",
                "title": f"Car {i}",
                "color": None,
                "images": [f"https://{prefix}.example.com/{i}/{p}.jpg" for p in range(images)],
            }
            for i in range(n)
        ]
    }


def test_posting_an_inventory_answers_202_with_the_scrape(
    api_as, reviewer, _no_classification, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(reviewer).post("/api/v1/advertisers/acme/scrapes/", inventory(4), format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["url"].endswith(f"/api/v1/scrapes/{body['id']}/")
    assert body["status"] == "queued" and body["total"] == 12
    assert Advertiser.objects.filter(slug="acme").exists()
    assert VehicleImage.objects.filter(status="pending").count() == 12
    assert _no_classification == [body["id"]]  # queued after commit
    progress = api_as(reviewer).get(body["url"]).json()
    assert {k: progress[k] for k in ("status", "total", "done", "from_cache", "failed")} == {
        "status": "queued",
        "total": 12,
        "done": 0,
        "from_cache": 0,
        "failed": 0,
    }


@pytest.mark.parametrize(
    "vehicle, reason",
    [
        ({"external_id": "B", "color": "Mauve", "images": []}, "unknown colour"),
        ({"external_id": "A", "images": []}, "duplicate external_id"),
        ({"external_id": "B", "images": ["ftp://x.example.com/a.jpg"]}, "not an http(s) URL"),
        ({"external_id": "B", "images": ["https://x.example.com/a.jpg"] * 41}, "at most 40"),
        ({"title": "no id", "images": []}, "external_id is required"),
    ],
)
def test_invalid_inventory_is_a_400_saying_which_vehicle_and_why(api_as, reviewer, vehicle, reason):
    payload = {"vehicles": [{"external_id": "A", "images": []}, vehicle]}
    response = api_as(reviewer).post("/api/v1/advertisers/acme/scrapes/", payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert reason in error["message"]
    assert error["vehicles"][0]["index"] == 1
    assert not Scrape.objects.exists()
    assert not Advertiser.objects.filter(slug="acme").exists()  # a refused inventory creates no advertiser


def test_an_inventory_that_is_not_an_object_is_a_400_not_a_500(api_as, reviewer):
    response = api_as(reviewer).post("/api/v1/advertisers/acme/scrapes/", [1, 2], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not Advertiser.objects.exists()


def test_scraped_colour_is_normalised(api_as, reviewer):
    payload = {"vehicles": [{"external_id": "A", "color": "grey", "images": []}]}
    assert api_as(reviewer).post("/api/v1/advertisers/acme/scrapes/", payload, format="json").status_code == 202
    assert Vehicle.objects.get().color == "Grey"


def test_vehicles_missing_from_a_scrape_become_inactive_not_deleted(api_as, reviewer):
    client = api_as(reviewer)
    client.post("/api/v1/advertisers/acme/scrapes/", inventory(3), format="json")
    second = inventory(3)
    second["vehicles"] = second["vehicles"][1:]  # X0 is gone
    response = client.post("/api/v1/advertisers/acme/scrapes/", second, format="json")
    assert response.json()["total"] == 6
    assert dict(Vehicle.objects.values_list("external_id", "active")) == {"X0": False, "X1": True, "X2": True}
    client.post("/api/v1/advertisers/acme/scrapes/", inventory(3), format="json")
    assert Vehicle.objects.filter(active=True).count() == 3


def test_a_changed_url_forgets_the_old_picture_and_is_marked_for_carry_over(api_as, reviewer, make_picture):
    client = api_as(reviewer)
    client.post("/api/v1/advertisers/acme/scrapes/", inventory(1, images=2), format="json")
    from tests.sitemaps.factories import ImageFactory

    VehicleImage.objects.update(image=ImageFactory(), status="done")
    changed = inventory(1, images=1, prefix="newcdn")
    client.post("/api/v1/advertisers/acme/scrapes/", changed, format="json")
    first, second = VehicleImage.objects.order_by("position")
    assert first.url.startswith("https://newcdn.") and first.image is None and first.url_changed
    assert first.status == "pending"
    assert second.active is False  # beyond the new gallery: hidden, not deleted


def test_a_newer_scrape_supersedes_an_unfinished_one(api_as, reviewer):
    client = api_as(reviewer)
    first = client.post("/api/v1/advertisers/acme/scrapes/", inventory(2), format="json").json()
    second = client.post("/api/v1/advertisers/acme/scrapes/", inventory(2), format="json").json()
    assert Scrape.objects.get(id=first["id"]).status == "failed"
    assert Scrape.objects.get(id=second["id"]).status == "queued"


@pytest.mark.parametrize("vehicles", [20, 400])
def test_ingestion_uses_bulk_writes(api_as, reviewer, vehicles, django_assert_max_num_queries):
    client = api_as(reviewer)
    rows = vehicles * 13  # vehicles + their pictures
    # Bulk statements are split by the database's parameter limit (SQLite: 999), never one per row.
    with django_assert_max_num_queries(20 + rows // 100):
        assert (
            client.post("/api/v1/advertisers/acme/scrapes/", inventory(vehicles, 12), format="json").status_code == 202
        )
    assert VehicleImage.objects.count() == vehicles * 12
    with django_assert_max_num_queries(20):  # the same inventory again: nothing to create
        assert (
            client.post("/api/v1/advertisers/acme/scrapes/", inventory(vehicles, 12), format="json").status_code == 202
        )


def test_relaunch_requeues_every_visible_picture(
    api_as, reviewer, _no_classification, django_capture_on_commit_callbacks
):
    client = api_as(reviewer)
    client.post("/api/v1/advertisers/acme/scrapes/", inventory(2), format="json")
    VehicleImage.objects.update(status="done")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/advertisers/acme/relaunch/")
    assert response.status_code == 202
    assert response.json()["kind"] == "relaunch" and response.json()["total"] == 6
    assert VehicleImage.objects.filter(status="pending", scrape_id=response.json()["id"]).count() == 6
    assert _no_classification[-1] == response.json()["id"]


def test_relaunch_button_on_the_review_page(client, reviewer, _no_classification):
    from tests.sitemaps.factories import AdvertiserFactory

    AdvertiserFactory(slug="acme")
    client.force_login(reviewer)
    assert 'action="/sitemaps/acme/relaunch/"' in client.get("/sitemaps/acme/").content.decode()
    response = client.post("/sitemaps/acme/relaunch/")
    assert response.status_code == 302
    assert Scrape.objects.get().kind == "relaunch"


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_large_first_inventory_is_analyzed_so_filters_are_planned_for_its_size(api_as, reviewer, monkeypatch):
    from django.db import connection
    from django.utils import timezone

    monkeypatch.setattr("sitemaps.ingest.ANALYZE_AFTER_NEW_PICTURES", 30)

    def last_analyze():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = %s", [VehicleImage._meta.db_table]
            )
            return cursor.fetchone()[0]

    client = api_as(reviewer)
    before = timezone.now()
    assert client.post("/api/v1/advertisers/acme/scrapes/", inventory(20, 3), format="json").status_code == 202
    assert last_analyze() is not None and last_analyze() >= before
