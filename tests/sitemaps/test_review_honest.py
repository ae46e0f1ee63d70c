"""One precedence rule for the Python and SQL paths (one table of cases), honest filters (picture-level type
filter, counts, form errors, 1-based CSV), disagreements, scopes, fixes of pictures never downloaded, and
bounded query counts on every filtered view."""

import csv
import io

import pytest

from classification.models import GroundTruth
from sitemaps.fix_write import url_fixes_follow
from sitemaps.fixes import FixChange, ScopeNotAllowed, fixes_apply
from sitemaps.models import FixOutbox, ManualFix, VehicleImage
from sitemaps.precedence import effective_annotate
from sitemaps.selectors import sitemap_values
from tests.sitemaps.factories import ImageFactory, VehicleFactory, VehicleImageFactory, predict

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_cache_push(monkeypatch):
    monkeypatch.setattr("sitemaps.tasks.fix_deliver.delay", lambda outbox_id: None)


# (advertiser fix, staff fix, scraped colour, ML value, downloaded) → expected effective (image_type, colour)
CASES = [
    (None, None, "", "", True, ("Placeholder", None)),
    (None, None, "", "Stock", True, ("Stock", "Stock")),
    (None, "Dealer", "", "Stock", True, ("Dealer", "Dealer")),
    ("Placeholder", "Dealer", "", "Stock", True, ("Placeholder", "Placeholder")),
    (None, None, "Blue", "", True, ("Placeholder", "Blue")),
    (None, "Dealer", "Blue", "Stock", True, ("Dealer", "Dealer")),
    (None, None, "Blue", "Red", True, ("Placeholder", "Blue")),  # ML colour Red, no ML type: the scrape wins
    (None, "Dealer", "", "", False, ("Dealer", "Dealer")),
    ("Stock", "Dealer", "", "", False, ("Stock", "Stock")),
    (None, None, "Green", "", False, ("Placeholder", "Green")),
]
VALUE = {"Placeholder": "Grey", "Stock": "White", "Dealer": "Red"}  # the colour used for the same case


@pytest.mark.parametrize("adv_fix, staff_fix, scraped, ml, downloaded, expected", CASES)
def test_python_and_sql_paths_give_the_same_effective_values(
    reviewer, member, advertiser, adv_fix, staff_fix, scraped, ml, downloaded, expected
):
    vi = VehicleImageFactory(vehicle=VehicleFactory(advertiser=advertiser, color=scraped))
    ml_colour = {"Stock": "Stock", "Red": "Red"}.get(ml, "")
    if ml:
        predict(vi.image, image_type=ml if ml != "Red" else "", color=ml_colour and VALUE.get(ml, ml))
    if not downloaded:
        VehicleImage.objects.filter(id=vi.id).update(image=None, status="failed", error="http_403")
    for user, value in ((reviewer, staff_fix), (member, adv_fix)):
        if value:
            changes = [FixChange(vi.id, "image_type", value), FixChange(vi.id, "color", VALUE[value])]
            fixes_apply(user=user, advertiser=advertiser, changes=changes)
    vi = VehicleImage.objects.select_related("vehicle").get(id=vi.id)
    python = sitemap_values(advertiser=advertiser, vehicle_images=[vi])[vi.id]
    rows = VehicleImage.objects.filter(id=vi.id)
    for attribute in ("image_type", "color"):
        rows = effective_annotate(
            rows, attribute=attribute, advertiser_slug=advertiser.slug, advertiser_id=advertiser.id
        )
    sql = rows.values_list("effective_image_type", "effective_color").get()
    assert (python["image_type"].value, python["color"].value) == sql
    exp_type, exp_colour = expected
    assert python["image_type"].value == exp_type
    if exp_colour in VALUE:
        exp_colour = VALUE[exp_colour]
    assert python["color"].value == (exp_colour if exp_colour != "Stock" else "White")


def _page(client, user, advertiser, **params):
    client.force_login(user)
    return client.get(f"/sitemaps/{advertiser.slug}/", params)


def test_type_filter_shows_the_matching_pictures_not_whole_vehicles_and_counts_them(
    client, reviewer, advertiser, make_picture
):
    vehicle = VehicleFactory(advertiser=advertiser)
    stock = make_picture(vehicle, position=0, image_type="Stock", color="")
    dealer = make_picture(vehicle, position=1, image_type="Dealer", color="Red")
    html = _page(client, reviewer, advertiser, type="Stock").content.decode()
    assert f'data-vehicle-image="{stock.id}"' in html and f'data-vehicle-image="{dealer.id}"' not in html
    assert "1 picture in 1 vehicle match" in html
    assert "2 pictures in 1 vehicle" in _page(client, reviewer, advertiser).content.decode()


@pytest.mark.parametrize("params", [{"type": "Car"}, {"failures": "yes"}])
def test_an_invalid_review_filter_answers_a_form_error(client, reviewer, advertiser, make_picture, params):
    make_picture(advertiser=advertiser, image_type="Stock")
    response = _page(client, reviewer, advertiser, **params)
    assert response.status_code == 400
    assert "form-errors" in response.content.decode() and "image-row" not in response.content.decode()


def test_an_invalid_history_date_answers_a_form_error_not_an_empty_history(client, reviewer, advertiser):
    client.force_login(reviewer)
    response = client.get(f"/sitemaps/{advertiser.slug}/history/", {"since": "2099-99-99"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "since:" in html and "No fix yet" not in html
    assert client.get(f"/sitemaps/{advertiser.slug}/history/", {"until": "x", "format": "csv"}).status_code == 400


def test_api_answers_400_with_the_error_shape_for_a_bad_date(api_as, reviewer):
    body = api_as(reviewer).get("/api/v1/fixes/", {"since": "2024-02-30"})
    assert body.status_code == 400
    assert body.json()["error"]["code"] == "invalid" and "since" in body.json()["error"]["fields"]


def test_history_csv_positions_are_one_based_like_the_page(client, reviewer, advertiser, make_picture):
    vi = make_picture(VehicleFactory(advertiser=advertiser), position=0, image_type="Dealer")
    fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(vi.id, "image_type", "Stock")])
    client.force_login(reviewer)
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/sitemaps/{advertiser.slug}/history/?format=csv").content.decode()))
    )
    assert rows[0]["position"] == "1"


def test_staff_may_fix_for_this_advertiser_only_and_advertisers_may_not_fix_everywhere(
    reviewer, member, advertiser, other_advertiser, make_picture
):
    vi = make_picture(advertiser=advertiser, image_type="Dealer")
    VehicleImageFactory(vehicle=VehicleFactory(advertiser=other_advertiser), image=vi.image)
    (fix,) = fixes_apply(
        user=reviewer, advertiser=advertiser, changes=[FixChange(vi.id, "image_type", "Stock", scope="advertiser")]
    )
    assert fix.scope == "advertiser"
    assert GroundTruth.objects.get(id=fix.ground_truth_id).source == "advertiser_fix"
    with pytest.raises(ScopeNotAllowed):
        fixes_apply(user=member, advertiser=advertiser, changes=[FixChange(vi.id, "color", "Red", scope="staff")])


def test_a_repeated_submit_never_doubles_a_fix(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    client.force_login(reviewer)
    form = {f"type-{vi.id}": "Stock", f"shown-type-{vi.id}": "Dealer"}
    for _ in range(3):
        response = client.post(f"/sitemaps/{advertiser.slug}/", form, HTTP_ACCEPT="application/json")
        assert response.status_code == 200
    assert ManualFix.objects.count() == 1 and FixOutbox.objects.count() == 1


def test_a_picture_never_downloaded_is_fixed_by_url_and_the_fix_follows_it(reviewer, advertiser, settings):
    vi = VehicleImageFactory(vehicle=VehicleFactory(advertiser=advertiser), image=None, status="failed")
    (url_fix,) = fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(vi.id, "image_type", "Dealer")])
    assert (url_fix.image_id, url_fix.ground_truth_id, url_fix.url) == (None, None, vi.url)
    assert FixOutbox.objects.get(manual_fix=url_fix).ground_truth_id is None

    from classification import cache
    from sitemaps.fix_write import fix_deliver

    assert fix_deliver(outbox_id=FixOutbox.objects.get(manual_fix=url_fix).id)
    assert cache.url_entry_get(url=vi.url)["staff"]["image_type"]["value"] == "Dealer"

    image = ImageFactory()
    predict(image, image_type="Stock", color="Red")
    VehicleImage.objects.filter(id=vi.id).update(image=image, status="done")
    assert url_fixes_follow(vehicle_image_ids=[vi.id]) == 1
    followed = ManualFix.objects.get(carried_from=url_fix)
    assert (followed.image_id, followed.new_value, followed.scope) == (image.id, "Dealer", "staff")
    vi = VehicleImage.objects.select_related("vehicle").get(id=vi.id)
    assert sitemap_values(advertiser=advertiser, vehicle_images=[vi])[vi.id]["image_type"].value == "Dealer"


@pytest.mark.parametrize(
    "params",
    [{}, {"type": "Stock"}, {"failures": "1", "type": "Stock"}, {"disagreement": "1"}, {"fixed": "1", "size": "100"}],
)
def test_every_review_view_costs_at_most_15_queries(
    client, reviewer, member, advertiser, make_picture, params, django_assert_max_num_queries
):
    pictures = []
    for _n in range(30):
        vehicle = VehicleFactory(advertiser=advertiser)
        pictures += [make_picture(vehicle, position=p, image_type="Dealer", color="Red") for p in range(3)]
    fixes_apply(user=member, advertiser=advertiser, changes=[FixChange(pictures[0].id, "image_type", "Stock")])
    fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(pictures[0].id, "image_type", "Placeholder")])
    client.force_login(reviewer)
    with django_assert_max_num_queries(15):
        response = client.get(f"/sitemaps/{advertiser.slug}/", params)
    assert response.status_code == 200
    if params.get("disagreement"):
        assert f'data-vehicle-image="{pictures[0].id}"' in response.content.decode()
        assert "1 picture in 1 vehicle match" in response.content.decode()


def test_openapi_documents_bodies_and_error_statuses_of_every_sitemaps_endpoint(api_as, reviewer):
    schema = api_as(reviewer).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path, methods in schema["paths"].items():
        if not any(k in path for k in ("advertisers", "scrapes", "fixes")):
            continue
        for method, op in methods.items():
            responses = op["responses"]
            ok = [s for s in responses if s.startswith("2")]
            assert ok and all("content" in responses[s] for s in ok), (path, method)
            assert "404" in responses and "content" in responses["404"], (path, method)


def test_sitemap_api_counts_matching_pictures_and_keeps_only_them(api_as, reviewer, advertiser, make_picture):
    vehicle = VehicleFactory(advertiser=advertiser)
    stock = make_picture(vehicle, position=0, image_type="Stock")
    make_picture(vehicle, position=1, image_type="Dealer")
    body = api_as(reviewer).get(f"/api/v1/advertisers/{advertiser.slug}/sitemap/", {"type": "Stock"}).json()
    assert (body["count"], body["pictures"]) == (1, 1)
    assert [i["id"] for i in body["results"][0]["images"]] == [stock.id]
    bad = api_as(reviewer).get(f"/api/v1/advertisers/{advertiser.slug}/sitemap/", {"type": "Car"})
    assert bad.status_code == 400 and "type" in bad.json()["error"]["fields"]
