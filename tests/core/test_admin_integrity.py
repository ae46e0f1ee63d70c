"""The admin cannot bypass the labeling services that keep votes, tallies and campaigns consistent."""

import uuid

import pytest

from classification.models import Image
from labeling.models import Campaign, Item, Vote

pytestmark = pytest.mark.django_db


@pytest.fixture
def vote(labeler):
    image = Image.objects.create(sha256="a" * 64, width=64, height=48, format="JPEG", byte_size=1)
    campaign = Campaign.objects.create(name="Types", attribute="image_type")
    item = Item.objects.create(campaign=campaign, image=image, counts={"Dealer": 1}, vote_count=1, top_count=1)
    return Vote.objects.create(item=item, user=labeler, label="Dealer", client_uuid=uuid.uuid4())


def test_an_admin_cannot_delete_a_counted_vote_in_the_admin(client, admin_user, vote):
    client.force_login(admin_user)
    assert client.get(f"/admin/labeling/vote/{vote.pk}/delete/").status_code == 403
    response = client.post(
        "/admin/labeling/vote/", {"action": "delete_selected", "_selected_action": [vote.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    assert Vote.objects.filter(pk=vote.pk).exists()
    assert Item.objects.get(pk=vote.item_id).vote_count == 1


def test_an_items_campaign_picture_and_gold_flag_cannot_change_in_the_admin(client, admin_user, vote):
    item = vote.item
    other = Campaign.objects.create(name="Colours", attribute="color")
    client.force_login(admin_user)
    response = client.post(
        f"/admin/labeling/item/{item.pk}/change/",
        {
            "campaign": other.pk,
            "image": item.image_id,
            "is_gold": "on",
            "gold_label": "Dealer",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.campaign_id, item.is_gold, item.vote_count) == (vote.item.campaign_id, False, 1)


def test_a_campaigns_question_cannot_change_in_the_admin(client, admin_user, vote):
    campaign = vote.item.campaign
    client.force_login(admin_user)
    response = client.post(
        f"/admin/labeling/campaign/{campaign.pk}/change/",
        {"name": campaign.name, "attribute": "color", "guidelines": "", "votes_required": 5, "max_votes": 9,
         "gold_rate": 0.1, "active": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.attribute == "image_type"
