"""Gold items measure labelers and never count toward real items; low gold accuracy is flagged."""

import uuid

import pytest

from classification.models import GroundTruth
from labeling.models import Item
from labeling.selectors import campaigns_with_progress, labeler_quality, smoothed
from labeling.services import vote_record
from tests.labeling.conftest import CampaignFactory, ItemFactory


def give(user, item, label):
    return vote_record(user=user, item_id=item.pk, label=label, client_uuid=uuid.uuid4())


@pytest.mark.django_db
def test_gold_items_are_never_decided_and_never_become_ground_truth(labelers):
    gold = ItemFactory(is_gold=True, gold_label="Stock")
    for person in labelers(12):  # more voters than max_votes: gold keeps measuring
        give(person, gold, "Stock")
    gold.refresh_from_db()
    assert (gold.status, gold.vote_count) == ("open", 12)
    assert not GroundTruth.objects.exists()


@pytest.mark.django_db
def test_gold_is_left_out_of_campaign_progress(make_items):
    campaign = CampaignFactory()
    make_items(campaign, 3)
    make_items(campaign, 4, is_gold=True, gold_label="Dealer")
    row = campaigns_with_progress().get(pk=campaign.pk)
    assert (row.n_items, row.n_open, row.n_gold) == (3, 3, 4)


@pytest.mark.django_db
def test_database_refuses_gold_without_an_answer_and_a_closed_gold_item():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ItemFactory(is_gold=True, gold_label="")
    with pytest.raises(IntegrityError), transaction.atomic():
        ItemFactory(is_gold=True, gold_label="Dealer", status=Item.Status.DECIDED)


def test_smoothing_starts_new_labelers_in_the_middle():
    assert smoothed(0, 0) == 0.5
    assert smoothed(1, 1) == pytest.approx(2 / 3)
    assert smoothed(10, 10) == pytest.approx(11 / 12)


@pytest.mark.django_db
def test_quality_counts_gold_accuracy_and_agreement_and_flags_bad_labelers(labelers, settings):
    settings.LABELING_FLAG_MIN_GOLD = 5
    settings.LABELING_FLAG_BELOW = 0.7
    campaign = CampaignFactory(votes_required=3, max_votes=5)
    golds = [ItemFactory(campaign=campaign, is_gold=True, gold_label="Stock") for _ in range(6)]
    good, bad, c, d = labelers(4)
    for g in golds:
        give(good, g, "Stock")
        give(bad, g, "Dealer")
    give(bad, ItemFactory(campaign=campaign), "cant_tell")  # not compared: can't tell is no disagreement
    real = ItemFactory(campaign=campaign)
    give(good, real, "Dealer")
    give(c, real, "Dealer")
    give(bad, real, "Stock")
    give(d, real, "Dealer")  # decided Dealer
    quality = {q.username: q for q in labeler_quality()}
    g, b = quality[good.username], quality[bad.username]
    assert (g.gold_answered, g.gold_correct, g.compared, g.agreed) == (6, 6, 1, 1)
    assert (b.gold_answered, b.gold_correct, b.compared, b.agreed) == (6, 0, 1, 0)
    assert b.votes == 8 and g.votes == 7
    assert b.flagged and not g.flagged
    assert not quality[c.username].flagged  # no gold answered: not enough to judge


@pytest.mark.django_db
def test_flagged_labelers_show_to_admins_on_the_stats_page_and_in_the_admin(client, admin_user, labelers, settings):
    settings.LABELING_FLAG_MIN_GOLD = 2
    campaign = CampaignFactory()
    (bad,) = labelers(1, prefix="sloppy")
    for _ in range(4):
        give(bad, ItemFactory(campaign=campaign, is_gold=True, gold_label="Stock"), "Dealer")
    client.force_login(admin_user)
    html = client.get("/label/stats/").content.decode()
    assert 'id="flagged"' in html and "sloppy0" in html.split('id="flagged"')[1]
    admin_html = client.get("/admin/labeling/labelerquality/?flagged=yes").content.decode()
    assert "sloppy0" in admin_html
    assert "sloppy0" not in client.get("/admin/labeling/labelerquality/?flagged=no").content.decode()


@pytest.mark.django_db
def test_labelers_do_not_see_the_flag_list(client, labeler):
    client.force_login(labeler)
    assert 'id="flagged"' not in client.get("/label/stats/").content.decode()
