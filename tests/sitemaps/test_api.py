"""The sitemap read API and the fixes API: exact shapes, effective values with their sources, the hero image,
filters, and bounded query counts."""

import csv
import io

import pytest

from sitemaps.models import ManualFix
from tests.sitemaps.factories import VehicleFactory, VehicleImageFactory, predict

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quiet_tasks(monkeypatch):
    monkeypatch.setattr("sitemaps.tasks.fix_deliver.delay", lambda outbox_id: None)


def test_sitemap_api_gives_effective_values_sources_and_the_hero(api_as, reviewer, member, advertiser, make_picture):
    vehicle = VehicleFactory(advertiser=advertiser, external_id="E1", title="Estate", color="")
    stock = make_picture(vehicle, position=0, image_type="Stock", color="")
    unknown = make_picture(vehicle, position=1, image_type="", color="")
    dealer = make_picture(vehicle, position=2, image_type="Dealer", color="Red")
    make_picture(vehicle, position=3, image_type="Dealer", color="Red")
    before = api_as(reviewer).get(f"/api/v1/advertisers/{advertiser.slug}/sitemap/").json()["results"][0]
    assert before["hero_image"]["id"] == dealer.id  # the first Dealer picture in position order
    api_as(member).post("/api/v1/fixes/", {"vehicle_image": unknown.id, "image_type": "Dealer"}, format="json")

    body = api_as(reviewer).get(f"/api/v1/advertisers/{advertiser.slug}/sitemap/").json()
    assert body["count"] == 1
    (item,) = body["results"]
    assert set(item) == {"external_id", "title", "color", "hero_image", "images"}
    assert (item["external_id"], item["title"], item["color"]) == ("E1", "Estate", None)
    images = {i["id"]: i for i in item["images"]}
    assert set(images[stock.id]) == {
        "id", "url", "position", "image_type", "color", "image_type_source", "color_source",
        "ml_image_type", "ml_color", "fixed",
    }  # fmt: skip
    assert images[stock.id] | {"url": None} == {
        "id": stock.id, "url": None, "position": 0, "image_type": "Stock", "color": None,
        "image_type_source": "ml", "color_source": "default", "ml_image_type": "Stock", "ml_color": None,
        "fixed": False,
    }  # fmt: skip
    # The sitemap shows the advertiser's own fix to everyone who opens it (staff included).
    fixed = images[unknown.id]
    assert (fixed["image_type"], fixed["image_type_source"], fixed["fixed"]) == ("Dealer", "advertiser_fix", True)
    assert fixed["ml_image_type"] is None
    assert item["hero_image"]["id"] == unknown.id  # first Dealer in position order, fixes included
    assert api_as(member).get(f"/api/v1/advertisers/{advertiser.slug}/sitemap/").json()["results"] == [item]


def test_an_advertiser_fix_does_not_reach_another_advertisers_sitemap(
    api_as, reviewer, member, advertiser, other_advertiser, make_picture
):
    mine = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    theirs = VehicleImageFactory(vehicle=VehicleFactory(advertiser=other_advertiser), image=mine.image)
    api_as(member).post("/api/v1/fixes/", {"vehicle_image": mine.id, "image_type": "Stock"}, format="json")
    rival = api_as(reviewer).get(f"/api/v1/advertisers/{other_advertiser.slug}/sitemap/").json()["results"][0]
    assert rival["images"][0]["id"] == theirs.id
    assert (rival["images"][0]["image_type"], rival["images"][0]["fixed"]) == ("Dealer", False)
    # A staff fix is global.
    api_as(reviewer).post("/api/v1/fixes/", {"vehicle_image": mine.id, "color": "Blue"}, format="json")
    rival = api_as(reviewer).get(f"/api/v1/advertisers/{other_advertiser.slug}/sitemap/").json()["results"][0]
    assert (rival["images"][0]["color"], rival["images"][0]["color_source"]) == ("Blue", "staff_fix")


def test_sitemap_api_colour_from_the_scrape(api_as, reviewer, advertiser, make_picture):
    vi = make_picture(VehicleFactory(advertiser=advertiser, color="Blue"), image_type="Dealer", color="Red")
    image = api_as(reviewer).get(f"/api/v1/advertisers/{advertiser.slug}/sitemap/").json()["results"][0]["images"][0]
    assert image["id"] == vi.id
    assert (image["color"], image["color_source"], image["ml_color"]) == ("Blue", "scrape", "Red")


@pytest.mark.parametrize("vehicles", [2, 40])
def test_sitemap_api_query_count_is_bounded(api_as, reviewer, advertiser, vehicles, django_assert_max_num_queries):
    for _ in range(vehicles):
        vehicle = VehicleFactory(advertiser=advertiser)
        for position in range(3):
            predict(VehicleImageFactory(vehicle=vehicle, position=position).image, image_type="Dealer", color="Red")
    client = api_as(reviewer)
    for params in ({}, {"page": 2, "page_size": 10}, {"page_size": 100}):
        if params.get("page", 1) > 1 and vehicles <= 10:
            continue
        with django_assert_max_num_queries(12):
            assert client.get(f"/api/v1/advertisers/{advertiser.slug}/sitemap/", params).status_code == 200


def test_post_fix_api_creates_one_history_row_per_changed_attribute(api_as, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    response = api_as(reviewer).post(
        "/api/v1/fixes/", {"vehicle_image": vi.id, "image_type": "Stock", "color": "Red"}, format="json"
    )
    assert response.status_code == 201
    (fix,) = response.json()["fixes"]  # the colour did not change
    assert (fix["attribute"], fix["old_value"], fix["new_value"], fix["scope"], fix["user"]) == (
        "image_type", "Dealer", "Stock", "staff", "rev",
    )  # fmt: skip
    again = api_as(reviewer).post("/api/v1/fixes/", {"vehicle_image": vi.id, "image_type": "Stock"}, format="json")
    assert again.status_code == 200 and again.json()["fixes"] == []
    assert ManualFix.objects.count() == 1


@pytest.mark.parametrize(
    "payload", [{"image_type": "Truck"}, {"color": "Mauve"}, {}, {"image_type": "Dealer", "vehicle_image": "x"}]
)
def test_post_fix_api_rejects_bad_input_with_400(api_as, reviewer, advertiser, make_picture, payload):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    response = api_as(reviewer).post("/api/v1/fixes/", {"vehicle_image": vi.id} | payload, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_fixes_api_filters_by_user_attribute_and_dates(api_as, reviewer, member, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    api_as(reviewer).post("/api/v1/fixes/", {"vehicle_image": vi.id, "image_type": "Stock"}, format="json")
    api_as(member).post("/api/v1/fixes/", {"vehicle_image": vi.id, "color": "Blue"}, format="json")
    client = api_as(reviewer)

    def found(**params):
        return [(f["user"], f["attribute"]) for f in client.get("/api/v1/fixes/", params).json()["results"]]

    assert found(advertiser="acme") == [("acme-user", "color"), ("rev", "image_type")]
    assert found(user="rev") == [("rev", "image_type")]
    assert found(attribute="color") == [("acme-user", "color")]
    assert found(since="2000-01-01", until="2000-12-31") == []
    assert client.get("/api/v1/fixes/", {"since": "yesterday"}).status_code == 400


def test_history_page_and_csv(client, reviewer, api_as, advertiser, make_picture):
    vi = make_picture(VehicleFactory(advertiser=advertiser, external_id="H1"), image_type="Dealer", color="Red")
    api_as(reviewer).post(
        "/api/v1/fixes/", {"vehicle_image": vi.id, "image_type": "Stock", "color": "Blue"}, format="json"
    )
    client.force_login(reviewer)
    html = client.get(f"/sitemaps/{advertiser.slug}/history/").content.decode()
    assert html.count('class="history-row"') == 2
    assert "Dealer → <strong>Stock</strong>" in html
    assert (
        client.get(f"/sitemaps/{advertiser.slug}/history/", {"attribute": "color"})
        .content.decode()
        .count('class="history-row"')
        == 1
    )
    response = client.get(f"/sitemaps/{advertiser.slug}/history/", {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().strip().splitlines()
    assert lines[0].startswith("when,advertiser,external_id")
    assert len(lines) == 3 and all(",acme,H1," in line for line in lines[1:])


def test_history_csv_defuses_spreadsheet_formulas_an_advertiser_planted(
    client, reviewer, api_as, advertiser, make_picture
):
    vi = make_picture(
        VehicleFactory(advertiser=advertiser, external_id='=HYPERLINK("http://evil")'), image_type="Dealer"
    )
    api_as(reviewer).post("/api/v1/fixes/", {"vehicle_image": vi.id, "image_type": "Stock"}, format="json")
    client.force_login(reviewer)
    body = client.get(f"/sitemaps/{advertiser.slug}/history/", {"format": "csv"}).content.decode()
    row = next(csv.reader(io.StringIO(body.splitlines()[1])))
    assert row[2] == '\'=HYPERLINK("http://evil")'
