"""Advertiser isolation, as a matrix over every sitemap route and method: staff see every advertiser, an
advertiser user only their own, labelers no sitemap; everything else answers 404."""

import pytest

from sitemaps.models import ManualFix, Scrape
from tests.sitemaps.factories import VehicleFactory

pytestmark = pytest.mark.django_db

ALLOWED, HIDDEN = "allowed", "hidden"


@pytest.fixture(autouse=True)
def _quiet_tasks(monkeypatch):
    monkeypatch.setattr("sitemaps.tasks.scrape_classify.delay", lambda scrape_id: None)
    monkeypatch.setattr("sitemaps.tasks.fix_deliver.delay", lambda outbox_id: None)


@pytest.fixture
def world(advertiser, other_advertiser, make_picture):
    vi = make_picture(VehicleFactory(advertiser=advertiser), image_type="Dealer", color="Red")
    make_picture(VehicleFactory(advertiser=other_advertiser), image_type="Dealer", color="Red")
    scrape = Scrape.objects.create(advertiser=advertiser, total=1)
    return {"vi": vi, "scrape": scrape}


def routes(world):
    vi, scrape = world["vi"], world["scrape"]
    inventory = {"vehicles": [{"external_id": "N1", "images": ["https://cdn.example.com/n1.jpg"]}]}
    return [
        ("page", "get", "/sitemaps/acme/", None),
        ("page", "post", "/sitemaps/acme/", {f"type-{vi.id}": "Stock", f"shown-type-{vi.id}": "Dealer"}),
        ("page", "post", "/sitemaps/acme/relaunch/", {}),
        ("page", "get", "/sitemaps/acme/history/", None),
        ("page", "get", "/sitemaps/acme/history/?format=csv", None),
        ("api", "post", "/api/v1/advertisers/acme/scrapes/", inventory),
        ("api", "post", "/api/v1/advertisers/acme/relaunch/", {}),
        ("api", "get", "/api/v1/advertisers/acme/sitemap/", None),
        ("api", "get", f"/api/v1/scrapes/{scrape.id}/", None),
        ("api", "get", "/api/v1/fixes/?advertiser=acme", None),
        ("api", "post", "/api/v1/fixes/", {"vehicle_image": vi.id, "image_type": "Placeholder"}),
    ]


@pytest.mark.parametrize(
    "who, expected",
    [
        ("reviewer", ALLOWED),
        ("admin_user", ALLOWED),
        ("member", ALLOWED),
        ("rival_member", HIDDEN),
        ("labeler", HIDDEN),
    ],
)
def test_isolation_matrix_over_every_route_and_method(request, client, api_client, world, who, expected):
    user = request.getfixturevalue(who)
    client.force_login(user)
    api_client.force_authenticate(user)
    for kind, method, url, data in routes(world):
        if kind == "page":
            response = getattr(client, method)(url, data) if data is not None else getattr(client, method)(url)
        else:
            response = (
                getattr(api_client, method)(url, data, format="json") if method == "post" else api_client.get(url)
            )
        if expected == ALLOWED:
            assert response.status_code in (200, 201, 202, 302), (who, method, url, response.status_code)
        else:
            assert response.status_code == 404, (who, method, url, response.status_code)
    if expected == HIDDEN:
        assert not ManualFix.objects.exists()
        assert Scrape.objects.count() == 1


def test_a_fix_naming_another_advertisers_image_is_404(api_as, rival_member, world):
    response = api_as(rival_member).post(
        "/api/v1/fixes/", {"vehicle_image": world["vi"].id, "color": "Blue"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not ManualFix.objects.exists()


def test_a_review_form_smuggling_another_advertisers_image_is_404(client, rival_member, world, other_advertiser):
    client.force_login(rival_member)
    vi = world["vi"]
    response = client.post(
        f"/sitemaps/{other_advertiser.slug}/", {f"color-{vi.id}": "Blue", f"shown-color-{vi.id}": "Red"}
    )
    assert response.status_code == 404
    assert not ManualFix.objects.exists()


def test_the_advertiser_list_shows_only_visible_advertisers(client, member, reviewer, labeler, world):
    client.force_login(member)
    html = client.get("/sitemaps/").content.decode()
    assert "/sitemaps/acme/" in html and "/sitemaps/rival/" not in html
    client.force_login(reviewer)
    html = client.get("/sitemaps/").content.decode()
    assert "/sitemaps/acme/" in html and "/sitemaps/rival/" in html
    client.force_login(labeler)
    assert client.get("/sitemaps/").status_code == 403


def test_fix_history_api_without_advertiser_lists_only_visible_fixes(api_as, reviewer, rival_member, world):
    api_as(reviewer).post("/api/v1/fixes/", {"vehicle_image": world["vi"].id, "color": "Blue"}, format="json")
    assert api_as(reviewer).get("/api/v1/fixes/").json()["count"] == 1
    assert api_as(rival_member).get("/api/v1/fixes/").json()["count"] == 0


def test_anonymous_api_is_refused(api_client, world):
    assert api_client.get("/api/v1/advertisers/acme/sitemap/").status_code in (401, 403)


def test_an_advertiser_user_never_sees_another_advertisers_name_fix_or_url(
    client, member, rival_member, reviewer, advertiser, other_advertiser, make_picture
):
    from sitemaps.fixes import FixChange, fixes_apply
    from tests.sitemaps.factories import VehicleImageFactory

    mine = make_picture(advertiser=advertiser, image_type="Dealer", color="Red", url="https://acme.example.com/a.jpg")
    theirs = VehicleImageFactory(
        vehicle=VehicleFactory(advertiser=other_advertiser), image=mine.image, url="https://secret.rival.example/a.jpg"
    )
    # The rival disagrees with acme's own fix; a reviewer fixes the colour from the rival's sitemap.
    fixes_apply(user=member, advertiser=advertiser, changes=[FixChange(mine.id, "image_type", "Stock")])
    fixes_apply(
        user=rival_member, advertiser=other_advertiser, changes=[FixChange(theirs.id, "image_type", "Placeholder")]
    )
    fixes_apply(user=reviewer, advertiser=other_advertiser, changes=[FixChange(theirs.id, "color", "Blue")])

    client.force_login(member)
    html = client.get(f"/sitemaps/{advertiser.slug}/").content.decode()
    assert "another advertiser fixed the same picture&#x27;s image_type differently" in html
    assert "rival" not in html.lower() and "secret.rival.example" not in html
    assert "color → Blue" in html  # the staff fix itself is global and shown

    client.force_login(reviewer)
    staff_html = client.get(f"/sitemaps/{advertiser.slug}/").content.decode()
    assert "rival fixed the same picture&#x27;s image_type as Placeholder" in staff_html
    assert 'href="https://secret.rival.example/a.jpg"' in staff_html
