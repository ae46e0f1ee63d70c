"""The review page: seed 002's display and dropdown defaults one by one, Update saving only changes, filters,
and a query count that does not grow with the page or the advertiser's size."""

import re

import pytest

from classification.models import GroundTruth
from sitemaps.models import FixOutbox, ManualFix
from tests.sitemaps.factories import VehicleFactory, VehicleImageFactory, predict

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_cache_push(monkeypatch):
    # The cache push is tested in test_fixes; here only the page and the history matter.
    monkeypatch.setattr("sitemaps.tasks.fix_deliver.delay", lambda outbox_id: None)


def _row(html: str, vi_id: int) -> str:
    match = re.search(rf'<tr class="image-row[^"]*" data-vehicle-image="{vi_id}">(.*?)</tr>', html, re.S)
    assert match, f"no row for vehicle image {vi_id}"
    return match.group(1)


def _cell(row: str, css: str) -> str:
    return re.sub(r"<[^>]+>", "", re.search(rf'<td class="{css}">(.*?)</td>', row, re.S).group(1)).strip()


def _selected(row: str, name: str) -> str:
    select = re.search(rf'<select name="{name}-\d+"[^>]*>(.*?)</select>', row, re.S).group(1)
    return re.search(r"<option selected>([^<]+)</option>", select).group(1)


def _page(client, user, advertiser, **params):
    client.force_login(user)
    response = client.get(f"/sitemaps/{advertiser.slug}/", params)
    assert response.status_code == 200
    return response.content.decode()


def test_ml_image_type_shows_placeholder_when_the_classifier_returned_none(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="", color="")
    assert _cell(_row(_page(client, reviewer, advertiser), vi.id), "ml-type") == "Placeholder"


def test_ml_image_type_shows_the_classifier_value(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Stock", color="Red")
    assert _cell(_row(_page(client, reviewer, advertiser), vi.id), "ml-type") == "Stock"


def test_ml_colour_is_empty_when_the_classifier_returned_none(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="")
    assert _cell(_row(_page(client, reviewer, advertiser), vi.id), "ml-color") == ""


def test_scraped_vehicle_colour_is_shown_and_the_ml_colour_not_applied(client, reviewer, advertiser, make_picture):
    vehicle = VehicleFactory(advertiser=advertiser, color="Blue")
    vi = make_picture(vehicle, image_type="Dealer", color="Red")
    row = _row(_page(client, reviewer, advertiser), vi.id)
    assert _cell(row, "ml-color").startswith("Blue")
    assert "Red" not in _cell(row, "ml-color")
    assert _selected(row, "color") == "Blue"


def test_image_type_dropdown_preselects_the_ml_value(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Stock", color="Red")
    assert _selected(_row(_page(client, reviewer, advertiser), vi.id), "type") == "Stock"


def test_image_type_dropdown_preselects_placeholder_when_ml_returned_none(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="", color="")
    assert _selected(_row(_page(client, reviewer, advertiser), vi.id), "type") == "Placeholder"


def test_colour_dropdown_preselects_the_ml_value(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Yellow")
    assert _selected(_row(_page(client, reviewer, advertiser), vi.id), "color") == "Yellow"


def test_colour_dropdown_preselects_black_when_ml_returned_none(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="")
    assert _selected(_row(_page(client, reviewer, advertiser), vi.id), "color") == "Black"


def _form(html: str) -> dict[str, str]:
    """The review form as a browser would submit it untouched."""
    data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    for name, body in re.findall(r'<select name="((?:type|color)-\d+)"[^>]*>(.*?)</select>', html, re.S):
        data[name] = re.search(r"<option selected>([^<]+)</option>", body).group(1)
    return data


def test_update_saves_only_the_changed_rows(client, reviewer, advertiser, make_picture):
    pictures = [make_picture(advertiser=advertiser, image_type="Dealer", color="Red") for _ in range(3)]
    form = _form(_page(client, reviewer, advertiser))
    form[f"type-{pictures[1].id}"] = "Stock"
    response = client.post(f"/sitemaps/{advertiser.slug}/", form)
    assert response.status_code == 302
    fixes = list(ManualFix.objects.all())
    assert [(f.vehicle_image_id, f.attribute, f.old_value, f.new_value) for f in fixes] == [
        (pictures[1].id, "image_type", "Dealer", "Stock")
    ]
    assert FixOutbox.objects.count() == 1
    assert GroundTruth.objects.filter(source="staff_fix").count() == 1


def test_an_unchanged_dropdown_on_a_fixed_row_is_not_a_change(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    form = _form(_page(client, reviewer, advertiser))
    form[f"color-{vi.id}"] = "Green"
    client.post(f"/sitemaps/{advertiser.slug}/", form)
    html = _page(client, reviewer, advertiser)
    assert _selected(_row(html, vi.id), "color") == "Green"  # the effective value, after the fix
    client.post(f"/sitemaps/{advertiser.slug}/", _form(html))
    assert ManualFix.objects.count() == 1


def test_one_history_row_and_one_outbox_row_per_change(client, reviewer, advertiser, make_picture):
    a, b = (make_picture(advertiser=advertiser, image_type="Dealer", color="Red") for _ in range(2))
    form = _form(_page(client, reviewer, advertiser))
    form[f"type-{a.id}"] = "Placeholder"
    form[f"color-{a.id}"] = "Grey"
    form[f"color-{b.id}"] = "White"
    client.post(f"/sitemaps/{advertiser.slug}/", form)
    assert ManualFix.objects.count() == 3
    assert FixOutbox.objects.count() == 3
    assert sorted(ManualFix.objects.values_list("new_value", flat=True)) == ["Grey", "Placeholder", "White"]


def test_fixed_rows_are_marked_with_who_and_when(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    form = _form(_page(client, reviewer, advertiser))
    form[f"type-{vi.id}"] = "Stock"
    client.post(f"/sitemaps/{advertiser.slug}/", form)
    row = _row(_page(client, reviewer, advertiser), vi.id)
    assert "fixed" in row and "by rev" in row and "<time" in row


def test_filters_narrow_the_vehicles(client, reviewer, advertiser, make_picture):
    good = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    failing = make_picture(advertiser=advertiser, image_type="", color="")
    stock = make_picture(advertiser=advertiser, image_type="Stock", color="Red")
    ext = {vi.id: vi.vehicle.external_id for vi in (good, failing, stock)}

    def shown(**params):
        return set(re.findall(r'data-external-id="([^"]+)"', _page(client, reviewer, advertiser, **params)))

    assert shown(failures="1") == {ext[failing.id]}
    assert shown(type="Stock") == {ext[stock.id]}
    assert shown(q=ext[good.id]) == {ext[good.id]}
    assert shown(fixed="1") == set()
    form = _form(_page(client, reviewer, advertiser))
    form[f"type-{good.id}"] = "Stock"
    client.post(f"/sitemaps/{advertiser.slug}/", form)
    assert shown(fixed="1") == {ext[good.id]}
    assert shown(type="Stock") == {ext[stock.id], ext[good.id]}  # the effective type, after the fix


def _bulk_inventory(advertiser, vehicles: int, per_vehicle: int = 4):
    for _ in range(vehicles):
        vehicle = VehicleFactory(advertiser=advertiser)
        for position in range(per_vehicle):
            vi = VehicleImageFactory(vehicle=vehicle, position=position)
            predict(vi.image, image_type="Dealer", color="Red")


@pytest.mark.parametrize("vehicles", [3, 60])
def test_review_page_query_count_is_bounded_whatever_the_page_and_size(
    client, reviewer, advertiser, vehicles, django_assert_max_num_queries
):
    _bulk_inventory(advertiser, vehicles)
    # some fixes so the "who fixed" lookups run too
    client.force_login(reviewer)
    form = _form(client.get(f"/sitemaps/{advertiser.slug}/").content.decode())
    first = next(k for k in form if k.startswith("type-"))
    form[first] = "Stock"
    client.post(f"/sitemaps/{advertiser.slug}/", form)
    for params in (
        {},
        {"page": "last"},
        {"size": "50"},
        {"page": "2", "size": "10"},
        {"failures": "1", "type": "Stock"},
    ):
        with django_assert_max_num_queries(15):
            response = client.get(f"/sitemaps/{advertiser.slug}/", params)
        assert response.status_code == 200


def test_progress_bar_is_shown_while_a_scrape_runs(client, reviewer, advertiser):
    from sitemaps.models import Scrape

    scrape = Scrape.objects.create(advertiser=advertiser, status="running", total=10, done=4)
    html = _page(client, reviewer, advertiser)
    assert f'data-api="/api/v1/scrapes/{scrape.id}/"' in html
    assert 'role="progressbar"' in html and 'aria-valuenow="40"' in html


def test_a_full_page_form_without_javascript_is_accepted(client, reviewer, advertiser):
    _bulk_inventory(advertiser, 25, per_vehicle=12)
    form = _form(_page(client, reviewer, advertiser))
    assert len(form) > 1000  # Django's default DATA_UPLOAD_MAX_NUMBER_FIELDS
    last = max(k for k in form if k.startswith("color-"))
    form[last] = "Purple"
    assert client.post(f"/sitemaps/{advertiser.slug}/", form).status_code == 302
    assert ManualFix.objects.get().new_value == "Purple"


def test_review_page_costs_the_same_queries_on_any_page_and_for_any_advertiser_size(
    client, reviewer, advertiser, other_advertiser
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _bulk_inventory(advertiser, 60, per_vehicle=3)
    _bulk_inventory(other_advertiser, 2, per_vehicle=3)
    client.force_login(reviewer)
    form = _form(client.get(f"/sitemaps/{advertiser.slug}/").content.decode())
    form[next(k for k in form if k.startswith("color-"))] = "Pink"  # a fix on the first page only
    client.post(f"/sitemaps/{advertiser.slug}/", form)
    counts = {}
    for name, url in (
        ("first", f"/sitemaps/{advertiser.slug}/"),
        ("last", f"/sitemaps/{advertiser.slug}/?page=3"),
        ("big page", f"/sitemaps/{advertiser.slug}/?size=60"),
        ("small advertiser", f"/sitemaps/{other_advertiser.slug}/"),
    ):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts[name] = len(queries)
    assert len(set(counts.values())) == 1, counts
    assert counts["first"] <= 15
