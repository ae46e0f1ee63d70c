"""Quality counts: the weighted stopping rule on the server, flags that exclude a labeler's votes and reopen
what depended on them, the quality sweep, and what the admin sees and can undo."""

import uuid

import pytest

from classification.models import GroundTruth
from labeling.consensus import (
    CONFLICT,
    DECIDED,
    OPEN,
    Rule,
    posterior,
    voter_accuracy,
    weighted_consensus,
)
from labeling.models import FlagEvent, Item, LabelerStanding, Vote
from labeling.quality import labeler_flag, labeler_unflag, standings_refresh
from labeling.services import vote_record, vote_undo
from tests.labeling.conftest import CampaignFactory, ItemFactory


def give(user, item, label):
    return vote_record(user=user, item_id=item.pk, label=label, client_uuid=uuid.uuid4())


def standing(user, correct: int, answered: int) -> None:
    LabelerStanding.objects.update_or_create(
        user_id=user.pk, defaults={"gold_correct": correct, "gold_answered": answered}
    )


# --- the rule itself ---------------------------------------------------------------------------------------


def test_accuracy_from_gold_is_smoothed_and_capped():
    assert voter_accuracy(gold_correct=0, gold_answered=0) == pytest.approx(0.8)  # the Beta(4, 1) prior
    assert voter_accuracy(gold_correct=2, gold_answered=9) < 0.5
    assert voter_accuracy(gold_correct=500, gold_answered=500) < 0.98  # nobody decides alone
    with pytest.raises(ValueError):
        voter_accuracy(gold_correct=3, gold_answered=2)


def test_agreeing_skilled_voters_decide_early_and_a_dissent_keeps_the_item_open():
    kwargs = {"cant_tell": 0, "n_labels": 3, "threshold": 0.99, "min_votes": 2, "max_votes": 9}
    skilled = 0.95
    assert weighted_consensus(votes=[("Dealer", skilled)], **kwargs).state == OPEN  # below min_votes
    two = weighted_consensus(votes=[("Dealer", skilled)] * 2, **kwargs)
    assert (two.state, two.label) == (DECIDED, "Dealer") and two.posterior >= 0.99
    split = weighted_consensus(votes=[("Dealer", skilled), ("Stock", skilled), ("Dealer", skilled)], **kwargs)
    assert split.state == OPEN  # a disagreement says the picture may be hard: more votes are needed


def test_a_spammer_counts_for_nothing_and_cannot_flip_a_label():
    spammer = voter_accuracy(gold_correct=1, gold_answered=12)  # below chance on three answers
    alone = posterior(votes=[("Stock", spammer)] * 5, n_labels=3)
    assert alone["Stock"] == pytest.approx(1 / 3)
    with_good = posterior(votes=[("Dealer", 0.95), ("Dealer", 0.95)] + [("Stock", spammer)] * 4, n_labels=3)
    assert with_good["Dealer"] == pytest.approx(posterior(votes=[("Dealer", 0.95)] * 2, n_labels=3)["Dealer"])


def test_weighted_item_is_a_conflict_when_max_votes_are_spent_undecided():
    votes = [("Dealer", 0.7), ("Stock", 0.7)] * 2
    outcome = weighted_consensus(votes=votes, cant_tell=1, n_labels=3, threshold=0.99, min_votes=2, max_votes=5)
    assert outcome.state == CONFLICT
    with pytest.raises(ValueError):
        weighted_consensus(votes=votes, cant_tell=2, n_labels=3, threshold=0.99, min_votes=2, max_votes=5)


def test_count_rule_through_rule_object_is_the_five_agree_rule():
    rule = Rule(mode="count", votes_required=5, max_votes=9, n_labels=3)
    assert rule.outcome(counts={"Dealer": 4}, cant_tell=0).state == OPEN
    assert rule.outcome(counts={"Dealer": 5, "Stock": 1}, cant_tell=0).state == DECIDED
    assert rule.outcome(counts={"Dealer": 4, "Stock": 4}, cant_tell=1).state == CONFLICT


# --- the rule on the server --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_weighted_campaign_decides_when_the_posterior_of_its_voters_reaches_the_threshold(labelers):
    campaign = CampaignFactory(rule="weighted", min_votes=2, threshold=0.99)
    item = ItemFactory(campaign=campaign)
    good, also_good = labelers(2)
    standing(good, 30, 30)
    standing(also_good, 19, 20)
    give(good, item, "Stock")
    item.refresh_from_db()
    assert item.status == "open"  # one vote is below min_votes
    give(also_good, item, "Stock")
    item.refresh_from_db()
    expected = weighted_consensus(
        votes=[
            ("Stock", voter_accuracy(gold_correct=30, gold_answered=30)),
            ("Stock", voter_accuracy(gold_correct=19, gold_answered=20)),
        ],
        cant_tell=0,
        n_labels=3,
        threshold=0.99,
        min_votes=2,
        max_votes=9,
    )
    assert expected.state == DECIDED  # the server took the decision the shared rule takes
    assert (item.status, item.label, item.vote_count) == ("decided", "Stock", 2)
    assert GroundTruth.objects.filter(reference=f"labeling.item:{item.pk}", value="Stock").count() == 1


@pytest.mark.django_db
def test_weighted_campaign_does_not_decide_on_two_unreliable_voters(labelers):
    campaign = CampaignFactory(rule="weighted", min_votes=2, threshold=0.99)
    item = ItemFactory(campaign=campaign)
    a, b, c = labelers(3)
    # a has a poor gold record; b has none yet (the prior): two such voters agreeing are not enough
    standing(a, 5, 10)
    give(a, item, "Stock")
    give(b, item, "Stock")
    item.refresh_from_db()
    assert item.status == "open"
    standing(c, 40, 40)
    give(c, item, "Stock")
    item.refresh_from_db()
    assert (item.status, item.label) == ("decided", "Stock")


@pytest.mark.django_db
def test_count_campaign_still_decides_at_five_agreeing_votes_whatever_the_gold(labelers):
    item = ItemFactory(campaign=CampaignFactory())
    people = labelers(5)
    for person in people:
        standing(person, 50, 50)
    for person in people[:4]:
        give(person, item, "Dealer")
    item.refresh_from_db()
    assert item.status == "open"
    give(people[4], item, "Dealer")
    item.refresh_from_db()
    assert (item.status, item.vote_count) == ("decided", 5)


# --- flags -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_flagged_labelers_new_votes_are_kept_but_not_counted(labelers):
    item = ItemFactory(campaign=CampaignFactory(votes_required=2, max_votes=3))
    bad, good = labelers(2)
    labeler_flag(user=bad, source="admin", reason="test")
    result = give(bad, item, "Stock")
    assert result.created and Vote.objects.live().filter(user=bad, item=item).exists()
    item.refresh_from_db()
    assert (item.vote_count, item.counts) == (0, {})
    vote_undo(user=bad, vote_ref=result.vote.client_uuid)  # undoing it leaves the tally alone
    item.refresh_from_db()
    assert item.vote_count == 0
    give(good, item, "Dealer")
    item.refresh_from_db()
    assert (item.vote_count, item.status) == (1, "open")


@pytest.mark.django_db
def test_flag_reopens_an_item_decided_by_the_labeler_and_unflag_restores_it(labelers, admin_user):
    campaign = CampaignFactory(votes_required=3, max_votes=5)
    decided_by_them = ItemFactory(campaign=campaign)
    decided_anyway = ItemFactory(campaign=campaign)
    bad, a, b, c = labelers(4)
    for person in (a, b, bad):
        give(person, decided_by_them, "Stock")
    give(bad, decided_anyway, "Stock")  # outvoted: the decision does not depend on it
    for person in (a, b, c):
        give(person, decided_anyway, "Dealer")
    decided_by_them.refresh_from_db()
    assert decided_by_them.status == "decided"

    event = labeler_flag(user=bad, source="admin", by=admin_user, reason="spot check")
    decided_by_them.refresh_from_db()
    decided_anyway.refresh_from_db()
    assert (decided_by_them.status, decided_by_them.label, decided_by_them.vote_count) == ("open", "", 2)
    assert decided_anyway.status == "decided"
    assert not GroundTruth.objects.filter(reference=f"labeling.item:{decided_by_them.pk}").exists()
    assert (decided_anyway.status, decided_anyway.counts) == ("decided", {"Dealer": 3})
    assert Vote.objects.live().filter(user=bad).count() == 2  # kept
    assert event.changes == [
        {"item": decided_by_them.pk, "campaign": campaign.pk, "from": "decided Stock", "to": "open"}
    ]
    assert labeler_flag(user=bad, source="gold") is None  # already flagged

    undo = labeler_unflag(user=bad, by=admin_user)
    decided_by_them.refresh_from_db()
    assert (decided_by_them.status, decided_by_them.label) == ("decided", "Stock")
    assert undo.changes[0]["to"] == "decided Stock"
    assert GroundTruth.objects.filter(reference=f"labeling.item:{decided_by_them.pk}", value="Stock").count() == 1


@pytest.mark.django_db
def test_a_reopened_item_is_served_again_and_decides_on_honest_votes(labelers):
    from labeling.assignment import items_next

    campaign = CampaignFactory(votes_required=2, max_votes=3)
    item = ItemFactory(campaign=campaign)
    bad, a, b = labelers(3)
    give(bad, item, "Stock")
    give(a, item, "Stock")
    labeler_flag(user=bad, source="admin")
    assert [x.item.pk for x in items_next(user=b, campaign=campaign, count=5)] == [item.pk]
    give(b, item, "Stock")
    item.refresh_from_db()
    assert (item.status, item.vote_count) == ("decided", 2)


@pytest.mark.django_db
def test_quality_sweep_flags_by_gold_and_respects_an_admins_unflag(labelers, admin_user, settings):
    settings.LABELING_FLAG_MIN_GOLD = 5
    settings.LABELING_FLAG_BELOW = 0.7
    campaign = CampaignFactory(votes_required=2, max_votes=3)
    bad, good, other = labelers(3)
    real = ItemFactory(campaign=campaign)
    give(bad, real, "Stock")
    give(other, real, "Stock")  # decided on bad's vote
    for _ in range(6):
        gold = ItemFactory(campaign=campaign, is_gold=True, gold_label="Dealer")
        give(bad, gold, "Stock")
        give(good, gold, "Dealer")
    events = standings_refresh()
    assert [e.user_id for e in events] == [bad.pk]
    assert events[0].source == "gold" and "gold 0/6" in events[0].reason
    real.refresh_from_db()
    assert real.status == "open"
    assert LabelerStanding.objects.get(pk=good.pk).gold_correct == 6

    labeler_unflag(user=bad, by=admin_user)
    assert standings_refresh() == []  # no new gold evidence since the admin's call
    for _ in range(5):
        give(bad, ItemFactory(campaign=campaign, is_gold=True, gold_label="Dealer"), "Stock")
    assert [e.user_id for e in standings_refresh()] == [bad.pk]


@pytest.mark.django_db
def test_admin_flags_from_the_quality_list_sees_what_changed_and_unflags(client, admin_user, labelers):
    campaign = CampaignFactory(votes_required=2, max_votes=3)
    item = ItemFactory(campaign=campaign)
    bad, a = labelers(2, prefix="careless")
    give(bad, item, "Stock")
    give(a, item, "Stock")
    client.force_login(admin_user)
    url = "/admin/labeling/labelerquality/"
    response = client.post(url, {"action": "flag_labelers", "_selected_action": [bad.pk]}, follow=True)
    assert f"item {item.pk} decided Stock → open" in response.content.decode()
    assert Item.objects.get(pk=item.pk).status == "open"
    detail = client.get(f"{url}{bad.pk}/change/").content.decode()
    assert "Flagged" in detail and f"item {item.pk} decided Stock → open" in detail
    votes = client.get("/admin/labeling/vote/").content.decode()
    assert votes.count('alt="False"') == 1 and votes.count('alt="True"') == 1  # bad's vote: kept, not counted
    events = client.get("/admin/labeling/flagevent/").content.decode()
    assert f"/admin/labeling/item/{item.pk}/change/" in events
    response = client.post(url, {"action": "unflag_labelers", "_selected_action": [bad.pk]}, follow=True)
    assert f"item {item.pk} open → decided Stock" in response.content.decode()
    assert FlagEvent.objects.filter(user=bad).count() == 2


@pytest.mark.django_db
def test_an_item_an_unflag_closes_releases_its_leases(labelers, admin_user):
    from labeling.assignment import items_next
    from labeling.models import Lease

    campaign = CampaignFactory(votes_required=2, max_votes=3)
    item = ItemFactory(campaign=campaign)
    bad, a, waiting = labelers(3)
    labeler_flag(user=bad, source="admin")
    give(bad, item, "Stock")
    give(a, item, "Stock")
    assert [x.item.pk for x in items_next(user=waiting, campaign=campaign, count=1)] == [item.pk]
    labeler_unflag(user=bad, by=admin_user)  # bad's vote counts again: two Stock decide it
    item.refresh_from_db()
    assert (item.status, item.label) == ("decided", "Stock")
    assert not Lease.objects.filter(item=item).exists()
