"""The review page and the sitemap API filter vehicles by a tag some backend gave one of their pictures."""

import pytest

from classification.classifiers import Description
from classification.labels import description_record
from tests.sitemaps.factories import VehicleFactory, model_version

pytestmark = pytest.mark.django_db


def tag(vehicle_image, **labels):
    version = model_version()
    description_record(
        image=vehicle_image.image, description=Description(values={}, labels=labels, labels_version=version)
    )


def test_review_page_shows_only_vehicles_with_a_picture_so_tagged(client, reviewer, advertiser, make_picture):
    beach, logo, plain = (VehicleFactory(advertiser=advertiser, external_id=x) for x in ("BEACH1", "LOGO1", "PLAIN1"))
    tag(make_picture(beach, image_type="Dealer"), beach=0.91, car=0.99)
    make_picture(beach, image_type="Dealer")
    tag(make_picture(logo, image_type="Placeholder"), logo=0.97, text=0.95)
    make_picture(plain, image_type="Dealer")
    client.force_login(reviewer)
    html = client.get(f"/sitemaps/{advertiser.slug}/", {"tag": " Beach "}).content.decode()
    assert "BEACH1" in html and "LOGO1" not in html and "PLAIN1" not in html
    assert 'name="tag" value="beach"' in html
    html = client.get(f"/sitemaps/{advertiser.slug}/", {"tag": "text"}).content.decode()
    assert "LOGO1" in html and "BEACH1" not in html


def test_sitemap_api_filters_by_tag(api_as, reviewer, advertiser, make_picture):
    beach, other = VehicleFactory(advertiser=advertiser, external_id="B1"), VehicleFactory(advertiser=advertiser)
    tag(make_picture(beach, image_type="Dealer"), beach=0.8)
    make_picture(other, image_type="Dealer")
    response = api_as(reviewer).get(f"/api/v1/advertisers/{advertiser.slug}/sitemap/", {"tag": "beach"})
    assert response.status_code == 200
    assert [v["external_id"] for v in response.json()["results"]] == ["B1"]
