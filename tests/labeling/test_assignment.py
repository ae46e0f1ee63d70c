"""Assignment: which items a labeler gets next, leases, their expiry, gold interleaving, concurrency."""

import contextlib
import random
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from labeling.assignment import gold_slots, items_next, leases_expired_delete
from labeling.models import Item, Lease
from labeling.services import ItemClosed, vote_record
from tests.labeling.conftest import CampaignFactory
from tests.support import needs_postgres


def ids(assignments):
    return [a.item.pk for a in assignments]


def give(user, item, label="Dealer"):
    vote_record(user=user, item_id=item.pk, label=label, client_uuid=uuid.uuid4())


@pytest.mark.django_db
def test_items_closest_to_a_decision_come_first(campaign, make_items, labelers):
    fresh, nearly, halfway = make_items(campaign, 3)
    people = labelers(5)
    for person in people[:4]:
        give(person, nearly)
    for person in people[:2]:
        give(person, halfway)
    me = people[4]
    assert ids(items_next(user=me, campaign=campaign, count=3)) == [nearly.pk, halfway.pk, fresh.pk]


@pytest.mark.django_db
def test_items_the_user_voted_on_or_that_are_closed_are_never_served(campaign, make_items, labelers):
    mine, decided, other = make_items(campaign, 3)
    people = labelers(6)
    me = people[5]
    give(me, mine)
    for person in people[:5]:
        give(person, decided)
    assert Item.objects.get(pk=decided.pk).status == "decided"
    assert ids(items_next(user=me, campaign=campaign, count=5)) == [other.pk]


@pytest.mark.django_db
def test_an_item_is_not_leased_beyond_what_it_still_needs(campaign, make_items, labelers):
    (item,) = make_items(campaign, 1)
    people = labelers(7)
    for person in people[:3]:
        give(person, item)  # 3 Dealer: 2 more could decide it
    served = [ids(items_next(user=p, campaign=campaign, count=1)) for p in people[3:7]]
    assert served == [[item.pk], [item.pk], [], []]
    assert Lease.objects.filter(item=item).count() == 2


@pytest.mark.django_db
def test_expired_leases_free_the_item_for_others(campaign, make_items, labelers):
    (item,) = make_items(campaign, 1)
    people = labelers(5)
    for person in people[:4]:
        give(person, item)  # needs one more vote
    assert ids(items_next(user=people[4], campaign=campaign, count=1)) == [item.pk]
    other = labelers(1, prefix="late")[0]
    assert items_next(user=other, campaign=campaign, count=1) == []
    later = timezone.now() + timedelta(minutes=11)
    assert ids(items_next(user=other, campaign=campaign, count=1, now=later)) == [item.pk]
    assert leases_expired_delete(now=later + timedelta(minutes=11)) == 2


@pytest.mark.django_db
def test_lease_lasts_about_ten_minutes(campaign, make_items, labeler):
    make_items(campaign, 1)
    now = timezone.now()
    (assigned,) = items_next(user=labeler, campaign=campaign, count=1, now=now)
    assert assigned.expires_at == now + timedelta(seconds=600)


@pytest.mark.django_db
def test_a_reload_gets_the_same_leased_items_back_and_exclude_skips_them(campaign, make_items, labeler):
    make_items(campaign, 6)
    first = ids(items_next(user=labeler, campaign=campaign, count=3))
    assert sorted(ids(items_next(user=labeler, campaign=campaign, count=3))) == sorted(first)
    more = ids(items_next(user=labeler, campaign=campaign, count=3, exclude_ids=set(first)))
    assert len(more) == 3 and not set(more) & set(first)
    assert Lease.objects.filter(user=labeler).count() == 6


@pytest.mark.django_db
def test_gold_is_interleaved_at_the_gold_rate_and_never_twice_for_one_user(make_items, labeler):
    campaign = CampaignFactory(gold_rate=0.5)
    make_items(campaign, 40)
    gold = make_items(campaign, 10, is_gold=True, gold_label="Stock")
    gold_ids = {g.pk for g in gold}
    rng = random.Random(7)
    served = ids(items_next(user=labeler, campaign=campaign, count=20, rng=rng))
    n_gold = len(set(served) & gold_ids)
    assert 4 <= n_gold <= 10
    for pk in served:
        give(labeler, Item.objects.get(pk=pk), "Stock")
    again = ids(items_next(user=labeler, campaign=campaign, count=20, rng=rng))
    assert not set(again) & set(served)


@pytest.mark.django_db
def test_gold_rate_zero_serves_no_gold(make_items, labeler, campaign):
    make_items(campaign, 5)
    make_items(campaign, 5, is_gold=True, gold_label="Dealer")
    served = items_next(user=labeler, campaign=campaign, count=10)
    assert len(served) == 5 and not any(a.item.is_gold for a in served)


def test_gold_slots_follow_the_rate():
    rng = random.Random(1)
    total = sum(gold_slots(count=10, gold_rate=0.2, rng=rng) for _ in range(1000))
    assert 1800 <= total <= 2200
    assert gold_slots(count=10, gold_rate=0.0, rng=rng) == 0
    assert gold_slots(count=10, gold_rate=1.0, rng=rng) == 10


@pytest.mark.django_db
def test_inactive_campaign_serves_nothing(make_items, labeler):
    campaign = CampaignFactory(active=False)
    make_items(campaign, 3)
    assert items_next(user=labeler, campaign=campaign, count=3) == []


@pytest.mark.django_db
def test_next_costs_a_fixed_number_of_queries(campaign, make_items, labeler, django_assert_max_num_queries):
    make_items(campaign, 30)
    make_items(campaign, 5, is_gold=True, gold_label="Dealer")
    with django_assert_max_num_queries(8):
        assert len(items_next(user=labeler, campaign=campaign, count=20, rng=random.Random(3))) == 20


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_labelers_never_over_lease_an_item(make_items, labelers):
    campaign = CampaignFactory()
    items = make_items(campaign, 10)
    voters = labelers(4, prefix="v")
    for item in items:
        for person in voters:
            give(person, item)  # each needs exactly one more vote
    people = labelers(30)
    barrier = threading.Barrier(len(people))
    served: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def worker(person):
        try:
            barrier.wait()
            served[person.pk] = ids(items_next(user=person, campaign=campaign, count=2))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    handed_out = [pk for got in served.values() for pk in got]
    assert len(handed_out) == len(set(handed_out)) == 10  # each item to exactly one person
    assert Lease.objects.count() == 10


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_next_and_vote_keep_every_item_within_max_votes(make_items, labelers):
    campaign = CampaignFactory(votes_required=3, max_votes=5)
    make_items(campaign, 15)
    people = labelers(12)
    labels = ["Dealer", "Stock", "Placeholder", "cant_tell"]

    def worker(person, seed):
        rng = random.Random(seed)
        try:
            for _ in range(6):
                for a in items_next(user=person, campaign=campaign, count=3, rng=rng):
                    # A closed item is expected under contention: the vote is refused, nothing else.
                    with contextlib.suppress(ItemClosed):
                        vote_record(user=person, item_id=a.item.pk, label=rng.choice(labels), client_uuid=uuid.uuid4())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(p, i)) for i, p in enumerate(people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for item in Item.objects.all():
        live = item.votes.filter(undone_at__isnull=True).count()
        assert live == item.vote_count <= campaign.max_votes
        assert item.votes.values("user").distinct().count() == live


@pytest.mark.django_db
def test_periodic_sweep_deletes_only_expired_leases(campaign, make_items, labelers):
    from labeling.tasks import leases_sweep

    make_items(campaign, 2)
    a, b = labelers(2)
    items_next(user=a, campaign=campaign, count=1, now=timezone.now() - timedelta(minutes=30))
    items_next(user=b, campaign=campaign, count=1)
    assert leases_sweep.delay().get() == 1
    assert list(Lease.objects.values_list("user_id", flat=True)) == [b.pk]
