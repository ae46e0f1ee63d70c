"""Who may make the server fetch URLs (staff and service tokens), and who may see a thumbnail (someone who may
see a sitemap, campaign or dataset holding it)."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from core.roles import Role
from tests.labeling.conftest import CampaignFactory, ImageFactory, ItemFactory
from tests.sitemaps.factories import AdvertiserFactory, VehicleFactory, VehicleImageFactory

CLASSIFY = "/api/v1/classify/"
BLOCKED = {"url": "http://127.0.0.1:9/a.jpg"}  # refused by the fetcher: a result, not a download


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.LABELER, Role.ADVERTISER])
def test_labelers_and_advertisers_may_not_make_the_server_fetch_urls(api_as, make_user, role):
    response = api_as(make_user("someone", role)).post(CLASSIFY, BLOCKED, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.REVIEWER, Role.ADMIN, Role.SERVICE])
def test_staff_and_service_tokens_may_classify_urls(make_user, role):
    token = Token.objects.create(user=make_user("machine", role))
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.post(CLASSIFY, BLOCKED, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["results"][0]["error"] == "blocked_address"


@pytest.mark.django_db
def test_the_service_role_exists_after_migrations():
    from django.contrib.auth.models import Group

    assert Group.objects.filter(name="service").exists()


@pytest.fixture
def acme_picture(db):
    image = ImageFactory()
    advertiser = AdvertiserFactory(slug="acme")
    VehicleImageFactory(vehicle=VehicleFactory(advertiser=advertiser), image=image)
    return advertiser, image


def _get(user, image):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get(image.thumbnail.url)


@pytest.mark.django_db
def test_an_advertiser_sees_the_thumbnails_of_their_own_sitemap(make_user, acme_picture):
    advertiser, image = acme_picture
    member = make_user("acme-user", Role.ADVERTISER)
    advertiser.members.add(member)
    response = _get(member, image)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == image.thumbnail.open("rb").read()


@pytest.mark.django_db
def test_another_advertiser_gets_a_404_for_a_thumbnail_not_theirs(make_user, acme_picture):
    _, image = acme_picture
    rival = make_user("rival-user", Role.ADVERTISER)
    AdvertiserFactory(slug="rival").members.add(rival)
    assert _get(rival, image).status_code == 404


@pytest.mark.django_db
def test_a_labeler_sees_campaign_pictures_but_not_sitemap_pictures(labeler, acme_picture):
    _, sitemap_image = acme_picture
    item = ItemFactory(campaign=CampaignFactory())
    assert _get(labeler, item.image).status_code == 200
    assert _get(labeler, sitemap_image).status_code == 404


@pytest.mark.django_db
def test_staff_see_every_thumbnail_and_anonymous_callers_are_sent_to_login(reviewer, acme_picture):
    _, image = acme_picture
    assert _get(reviewer, image).status_code == 200
    anonymous = _get(None, image)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
