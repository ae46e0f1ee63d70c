"""The "model unsure" filter: the pictures whose calibrated score is low, for staff to check first."""

import pytest

from classification.models import Prediction
from tests.sitemaps.factories import VehicleFactory

pytestmark = pytest.mark.django_db


def scored(vehicle_image, attribute: str, score: float) -> None:
    Prediction.objects.filter(image=vehicle_image.image, attribute=attribute).update(score=score)


def test_review_page_shows_only_the_pictures_the_model_is_unsure_of(client, reviewer, advertiser, make_picture):
    car = VehicleFactory(advertiser=advertiser, external_id="CAR1")
    sure = make_picture(car, image_type="Dealer", color="Red", position=0)
    unsure_type = make_picture(car, image_type="Stock", color="Red", position=1)
    unsure_color = make_picture(car, image_type="Dealer", color="Blue", position=2)
    scored(unsure_type, "image_type", 0.52)
    scored(unsure_color, "color", 0.41)
    other = VehicleFactory(advertiser=advertiser, external_id="SURE2")
    make_picture(other, image_type="Dealer", color="Red")
    client.force_login(reviewer)

    response = client.get(f"/sitemaps/{advertiser.slug}/", {"unsure": "1"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "CAR1" in html and "SURE2" not in html
    assert "2 pictures in 1 vehicle match" in " ".join(html.split())
    assert f'data-vi="{unsure_type.id}"' in html or f"-{unsure_type.id}" in html
    assert f"type-{sure.id}" not in html


def test_sitemap_api_filters_the_unsure_pictures(api_as, reviewer, advertiser, make_picture):
    car = VehicleFactory(advertiser=advertiser, external_id="U1")
    doubtful = make_picture(car, image_type="Stock", color="Red")
    scored(doubtful, "image_type", 0.55)
    make_picture(VehicleFactory(advertiser=advertiser), image_type="Dealer", color="Red")

    response = api_as(reviewer).get(f"/api/v1/advertisers/{advertiser.slug}/sitemap/", {"unsure": "1"})

    assert response.status_code == 200
    assert [v["external_id"] for v in response.json()["results"]] == ["U1"]
