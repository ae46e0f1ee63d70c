"""The labeling API: shapes and status codes exactly as issue 5 lists them, roles, query counts."""

import uuid

import pytest

from labeling.models import Item, Vote
from tests.labeling.conftest import CampaignFactory, ItemFactory


@pytest.fixture
def client_for(api_as):
    return api_as


@pytest.mark.django_db
def test_campaign_list_shows_active_campaigns_with_progress(api_as, labeler, make_items, django_assert_max_num_queries):
    active = CampaignFactory(name="Types")
    CampaignFactory(name="Old", active=False)
    make_items(active, 3)
    make_items(active, 2, is_gold=True, gold_label="Dealer")
    client = api_as(labeler)
    with django_assert_max_num_queries(4):
        body = client.get("/api/v1/campaigns/").json()
    assert [c["name"] for c in body["results"]] == ["Types"]
    campaign = body["results"][0]
    assert campaign["progress"] == {"items": 3, "open": 3, "decided": 0, "conflict": 0, "adjudicated": 0}
    assert [c["value"] for c in campaign["choices"]] == ["Dealer", "Stock", "Placeholder", "cant_tell"]
    assert campaign["votes_required"] == 5


@pytest.mark.django_db
def test_next_leases_items_with_picture_choices_and_expiry(api_as, labeler, campaign, make_items):
    make_items(campaign, 4)
    response = api_as(labeler).post(f"/api/v1/campaigns/{campaign.pk}/next/", {"count": 3}, format="json")
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 3
    assert set(items[0]) == {"id", "image_url", "choices", "lease_expires"}
    assert items[0]["image_url"].startswith("/media/thumbnails/")
    assert items[0]["choices"][-1] == {"value": "cant_tell", "label": "Can't tell"}


@pytest.mark.django_db
def test_next_refuses_a_silly_count(api_as, labeler, campaign):
    response = api_as(labeler).post(f"/api/v1/campaigns/{campaign.pk}/next/", {"count": 500}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["count"]


@pytest.mark.django_db
def test_next_on_an_inactive_or_missing_campaign_is_404_whatever_the_body(api_as, labeler, make_items):
    inactive = CampaignFactory(active=False)
    make_items(inactive, 2)
    client = api_as(labeler)
    for pk in (inactive.pk, inactive.pk + 1000):
        for body in ({"count": 1}, {"count": 500}):
            response = client.post(f"/api/v1/campaigns/{pk}/next/", body, format="json")
            assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    assert not inactive.items.filter(leases__isnull=False).exists()


@pytest.mark.django_db
def test_vote_answers_201_then_200_on_replay(api_as, labeler):
    item = ItemFactory()
    client = api_as(labeler)
    body = {"item": item.pk, "label": "Stock", "client_uuid": str(uuid.uuid4())}
    first = client.post("/api/v1/votes/", body, format="json")
    again = client.post("/api/v1/votes/", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["item"] == {"id": item.pk, "status": "open", "label": "", "vote_count": 1}
    assert Vote.objects.count() == 1


@pytest.mark.django_db
def test_vote_on_a_decided_item_answers_409_with_the_item_state(api_as, labelers):
    item = ItemFactory()
    people = labelers(6)
    for person in people[:5]:
        api_as(person).post(
            "/api/v1/votes/", {"item": item.pk, "label": "Dealer", "client_uuid": str(uuid.uuid4())}, format="json"
        )
    response = api_as(people[5]).post(
        "/api/v1/votes/", {"item": item.pk, "label": "Stock", "client_uuid": str(uuid.uuid4())}, format="json"
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "item_closed"
    assert error["item"] == {"id": item.pk, "status": "decided", "label": "Dealer", "vote_count": 5}


@pytest.mark.django_db
def test_vote_with_unknown_label_answers_400(api_as, labeler):
    item = ItemFactory()
    response = api_as(labeler).post(
        "/api/v1/votes/", {"item": item.pk, "label": "Blue", "client_uuid": str(uuid.uuid4())}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_label"


@pytest.mark.django_db
def test_vote_without_client_uuid_answers_400(api_as, labeler):
    response = api_as(labeler).post("/api/v1/votes/", {"item": ItemFactory().pk, "label": "Dealer"}, format="json")
    assert response.status_code == 400
    assert "client_uuid" in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_delete_undoes_the_last_vote_by_id_or_uuid(api_as, labeler):
    a, b = ItemFactory(), ItemFactory()
    client = api_as(labeler)
    key = str(uuid.uuid4())
    first = client.post("/api/v1/votes/", {"item": a.pk, "label": "Dealer", "client_uuid": key}, format="json")
    assert client.delete(f"/api/v1/votes/{first.json()['id']}/").status_code == 204
    second = client.post(
        "/api/v1/votes/", {"item": b.pk, "label": "Stock", "client_uuid": str(uuid.uuid4())}, format="json"
    )
    assert client.delete(f"/api/v1/votes/{second.json()['client_uuid']}/").status_code == 204
    assert client.delete("/api/v1/votes/999999/").status_code == 404
    assert Vote.objects.live().count() == 0
    assert client.get(f"/api/v1/items/{a.pk}/").json()["vote_count"] == 0


@pytest.mark.django_db
def test_item_detail_shows_status_label_and_vote_count(api_as, labeler):
    item = ItemFactory(status=Item.Status.DECIDED, label="Stock", vote_count=5, top_count=5, counts={"Stock": 5})
    assert api_as(labeler).get(f"/api/v1/items/{item.pk}/").json() == {
        "id": item.pk,
        "status": "decided",
        "label": "Stock",
        "vote_count": 5,
    }


@pytest.mark.django_db
def test_users_without_a_labeling_role_are_refused(api_as, advertiser_user, campaign):
    client = api_as(advertiser_user)
    assert client.get("/api/v1/campaigns/").status_code == 403
    assert client.post(f"/api/v1/campaigns/{campaign.pk}/next/", {"count": 1}, format="json").status_code == 403
    assert client.post("/api/v1/votes/", {}, format="json").status_code == 403


@pytest.mark.django_db
def test_fill_api_is_for_admins_and_adds_a_random_sample(api_as, labeler, admin_user, campaign):
    from tests.labeling.conftest import ImageFactory

    ImageFactory.create_batch(6)
    assert (
        api_as(labeler).post(f"/api/v1/campaigns/{campaign.pk}/fill/", {"source": "random", "count": 2}).status_code
        == 403
    )
    client = api_as(admin_user)
    response = client.post(f"/api/v1/campaigns/{campaign.pk}/fill/", {"source": "random", "count": 4, "seed": 1})
    assert response.status_code == 200
    assert response.json()["added"] == 4
    response = client.post(f"/api/v1/campaigns/{campaign.pk}/fill/", {"source": "random", "count": 4})
    assert response.json()["added"] == 2  # only two pictures left that are not in the campaign
    assert client.post(f"/api/v1/campaigns/{campaign.pk}/fill/", {"source": "random"}).status_code == 400


@pytest.mark.django_db
def test_votes_csv_export_over_the_api_with_a_token(api_client, reviewer, labeler):
    from rest_framework.authtoken.models import Token

    campaign = CampaignFactory()
    item = ItemFactory(campaign=campaign)
    from labeling.services import vote_record

    vote_record(user=labeler, item_id=item.pk, label="Stock", client_uuid=uuid.uuid4())
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=labeler).key}")
    assert api_client.get(f"/api/v1/campaigns/{campaign.pk}/votes.csv").status_code == 403
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=reviewer).key}")
    response = api_client.get(f"/api/v1/campaigns/{campaign.pk}/votes.csv")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines() == ["task,worker,label", f"{item.pk},{labeler.pk},Stock"]
