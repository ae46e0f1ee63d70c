"""A scrape classified for real: the demo's picture view serves generated pictures on the live server, the
classification tasks fetch and classify them (loopback allowed for the test), and the sitemap shows them."""

import pytest
from django.test import override_settings

from sitemaps.demo import picture_bytes_for
from sitemaps.ingest import advertiser_ensure, inventory_parse, scrape_ingest
from sitemaps.models import Scrape, VehicleImage


def test_demo_picture_view_serves_deterministic_jpegs_without_login(client, db, settings):
    settings.SPOTCHECK_FETCH_ALLOW = ["127.0.0.1:8000"]  # the demo's setup
    response = client.get("/sitemaps/demo-pictures/dealer-red-3.jpg")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response.content == picture_bytes_for(kind="dealer", color="red", seed=3)
    assert response.content[:2] == b"\xff\xd8"
    assert client.get("/sitemaps/demo-pictures/truck-red-3.jpg").status_code == 404
    assert client.get("/sitemaps/demo-pictures/dealer-mauve-3.jpg").status_code == 404


def test_demo_pictures_do_not_exist_outside_the_demo(client, db, settings):
    settings.SPOTCHECK_FETCH_ALLOW = []  # production: nobody fetches them
    assert client.get("/sitemaps/demo-pictures/dealer-red-3.jpg").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_scrape_of_served_pictures_is_classified_and_shown(
    live_server, client, role_groups, make_user, settings, monkeypatch
):
    from classification import imaging
    from core.roles import Role
    from sitemaps import classify_run

    # Where decoding happens: stage 1 (the fetch queue's chunk) must never decode; stage 2 does.
    decodes = {"fetch": 0, "classify": 0}
    stage = ["none"]
    real_decode, real_fetch, real_classify = (
        imaging.decode,
        classify_run.scrape_chunk_fetch,
        classify_run.scrape_pictures_classify,
    )

    def in_stage(name, function):
        def run(**kwargs):
            stage.append(name)
            try:
                return function(**kwargs)
            finally:
                stage.pop()

        return run

    def counting_decode(data, **kwargs):
        decodes[stage[-1]] += 1
        return real_decode(data, **kwargs)

    monkeypatch.setattr(imaging, "decode", counting_decode)
    monkeypatch.setattr(classify_run, "scrape_chunk_fetch", in_stage("fetch", real_fetch))
    monkeypatch.setattr(classify_run, "scrape_pictures_classify", in_stage("classify", real_classify))

    port = live_server.thread.port  # "localhost" may resolve to both loopback addresses
    settings.SPOTCHECK_FETCH_ALLOW = [f"127.0.0.1:{port}", f"[::1]:{port}"]
    settings.SPOTCHECK_SITEMAP_REUSED_MIN_VEHICLES = 3
    base = f"{live_server.url}/sitemaps/demo-pictures"
    card = f"{base}/placeholder-grey-1.jpg"
    payload = {
        "vehicles": [
            {"external_id": "A", "images": [f"{base}/dealer-red-1.jpg", f"{base}/stock-blue-2.jpg", card]},
            {"external_id": "B", "color": "White", "images": [f"{base}/dealer-yellow-3.jpg", card]},
            {"external_id": "C", "images": [f"{base}/dealer-green-4.jpg", card, f"{base}/missing.jpg"]},
        ]
    }
    advertiser = advertiser_ensure(slug="live")
    with override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        scrape = scrape_ingest(advertiser=advertiser, vehicles=inventory_parse(payload=payload))
    scrape.refresh_from_db()
    assert scrape.status == Scrape.Status.DONE
    assert (scrape.total, scrape.done, scrape.failed) == (8, 7, 1)
    assert decodes == {"fetch": 0, "classify": 5}  # 5 distinct pictures, each decoded once, on the classify queue
    failed = VehicleImage.objects.get(status="failed")
    assert failed.url.endswith("/missing.jpg") and failed.error == "http_404"

    reviewer = make_user("live-rev", Role.REVIEWER)
    client.force_login(reviewer)
    body = client.get("/api/v1/advertisers/live/sitemap/").json()
    images = {i["url"].rsplit("/", 1)[1]: i for v in body["results"] for i in v["images"]}
    assert images["placeholder-grey-1.jpg"]["image_type"] == "Placeholder"  # reused on 3 vehicles
    assert images["dealer-red-1.jpg"]["image_type"] == "Dealer"
    assert images["stock-blue-2.jpg"]["image_type"] == "Stock"
    by_vehicle = {v["external_id"]: v for v in body["results"]}
    assert by_vehicle["B"]["images"][0]["color"] == "White"  # the scrape's colour, not the classifier's
    assert by_vehicle["A"]["hero_image"]["url"].endswith("dealer-red-1.jpg")

    # A second scrape of the same inventory is answered from the cache.
    with override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        again = scrape_ingest(advertiser=advertiser, vehicles=inventory_parse(payload=payload))
    again.refresh_from_db()
    assert again.status == "done" and again.from_cache >= 6
    assert decodes == {"fetch": 0, "classify": 5}
