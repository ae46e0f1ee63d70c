"""Recording votes: idempotent by client UUID, closed items refuse, undo, ground truth, concurrency."""

import threading
import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from classification.models import GroundTruth
from labeling.models import CANT_TELL, Item, Vote
from labeling.services import (
    AlreadyVoted,
    ItemClosed,
    UndoRefused,
    UnknownLabel,
    UuidReused,
    item_adjudicate,
    vote_record,
    vote_undo,
)
from tests.labeling.conftest import CampaignFactory, ItemFactory
from tests.support import needs_postgres


def vote(user, item, label="Dealer", client_uuid=None):
    return vote_record(user=user, item_id=item.pk, label=label, client_uuid=client_uuid or uuid.uuid4())


@pytest.mark.django_db
def test_fifth_agreeing_vote_decides_the_item_and_records_consensus_ground_truth(labelers):
    item = ItemFactory()
    people = labelers(6)
    for person in people[:4]:
        vote(person, item)
    vote(people[4], item, "Stock")
    item.refresh_from_db()
    assert item.status == Item.Status.OPEN
    assert not GroundTruth.objects.exists()

    result = vote(people[5], item)
    item.refresh_from_db()
    assert result.created
    assert (item.status, item.label, item.vote_count, item.top_count) == ("decided", "Dealer", 6, 5)
    assert item.counts == {"Dealer": 5, "Stock": 1}
    assert item.decided_at is not None
    gt = GroundTruth.objects.get()
    assert (gt.image_id, gt.attribute, gt.value, gt.source) == (item.image_id, "image_type", "Dealer", "consensus")
    assert (gt.votes, gt.margin, gt.reference) == (6, 4, f"labeling.item:{item.pk}")


@pytest.mark.django_db
def test_recording_a_vote_costs_a_fixed_number_of_queries(labelers, django_assert_max_num_queries):
    item = ItemFactory()
    people = labelers(5)
    for person in people[:4]:
        vote(person, item)
    with django_assert_max_num_queries(9):  # the deciding vote: lock, lookup, insert, ground truth, update, lease
        vote(people[4], item)


@pytest.mark.django_db
def test_vote_after_decision_is_refused_with_the_item_state_and_not_counted(labelers):
    item = ItemFactory()
    people = labelers(6)
    for person in people[:5]:
        vote(person, item)
    with pytest.raises(ItemClosed) as refused:
        vote(people[5], item, "Stock")
    assert refused.value.item.status == "decided"
    item.refresh_from_db()
    assert item.vote_count == 5
    assert Vote.objects.count() == 5


@pytest.mark.django_db
def test_replayed_client_uuid_returns_the_original_vote_without_counting_again(labeler):
    item = ItemFactory()
    key = uuid.uuid4()
    first = vote(labeler, item, "Dealer", key)
    again = vote(labeler, item, "Stock", key)  # a retry may even carry a stale body
    assert first.created and not again.created
    assert again.vote.pk == first.vote.pk and again.vote.label == "Dealer"
    item.refresh_from_db()
    assert item.vote_count == 1


@pytest.mark.django_db
def test_replay_after_the_item_was_decided_still_answers_with_the_original_vote(labelers):
    item = ItemFactory()
    people = labelers(5)
    key = uuid.uuid4()
    vote(people[0], item, client_uuid=key)
    for person in people[1:]:
        vote(person, item)
    replay = vote(people[0], item, client_uuid=key)
    assert not replay.created and replay.item.status == "decided"


@pytest.mark.django_db
def test_someone_elses_client_uuid_is_refused(labelers):
    item = ItemFactory()
    a, b = labelers(2)
    key = uuid.uuid4()
    vote(a, item, client_uuid=key)
    with pytest.raises(UuidReused):
        vote(b, item, client_uuid=key)


@pytest.mark.django_db
def test_unknown_label_is_refused(labeler):
    item = ItemFactory()
    with pytest.raises(UnknownLabel):
        vote(labeler, item, "Red")  # a colour, not an image type
    assert not Vote.objects.exists()


@pytest.mark.django_db
def test_second_answer_by_the_same_person_is_refused(labeler):
    item = ItemFactory()
    vote(labeler, item)
    with pytest.raises(AlreadyVoted):
        vote(labeler, item, "Stock")
    item.refresh_from_db()
    assert item.vote_count == 1


@pytest.mark.django_db
def test_cant_tell_spends_the_budget_until_the_item_becomes_a_conflict(labelers):
    item = ItemFactory()
    people = labelers(5)
    for person in people:
        vote(person, item, CANT_TELL)
    item.refresh_from_db()
    assert (item.status, item.cant_tell, item.top_count) == ("conflict", 5, 0)
    assert not GroundTruth.objects.exists()


@pytest.mark.django_db
def test_database_refuses_two_live_votes_of_one_person_on_one_item(labeler):
    item = ItemFactory()
    Vote.objects.create(item=item, user=labeler, label="Dealer", client_uuid=uuid.uuid4())
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(item=item, user=labeler, label="Stock", client_uuid=uuid.uuid4())


@pytest.mark.django_db
def test_database_refuses_a_reused_client_uuid(labelers):
    a, b = labelers(2)
    key = uuid.uuid4()
    Vote.objects.create(item=ItemFactory(), user=a, label="Dealer", client_uuid=key)
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(item=ItemFactory(), user=b, label="Dealer", client_uuid=key)


@pytest.mark.django_db
def test_undo_takes_back_the_last_vote_and_the_item_can_be_answered_again(labeler):
    item = ItemFactory()
    first = vote(labeler, item, "Stock")
    vote_undo(user=labeler, vote_ref=first.vote.pk)
    item.refresh_from_db()
    assert (item.vote_count, item.counts, item.top_count) == (0, {}, 0)
    again = vote(labeler, item, "Dealer")
    assert again.created
    item.refresh_from_db()
    assert item.counts == {"Dealer": 1}


@pytest.mark.django_db
def test_undo_by_client_uuid_is_idempotent_and_a_late_replay_is_not_recounted(labeler):
    item = ItemFactory()
    key = uuid.uuid4()
    vote(labeler, item, client_uuid=key)
    vote_undo(user=labeler, vote_ref=str(key))
    vote_undo(user=labeler, vote_ref=str(key))
    replay = vote(labeler, item, client_uuid=key)
    assert not replay.created and replay.vote.undone_at is not None
    item.refresh_from_db()
    assert item.vote_count == 0


@pytest.mark.django_db
def test_only_the_last_vote_can_be_undone(labeler):
    a, b = ItemFactory(), ItemFactory()
    first = vote(labeler, a)
    vote(labeler, b)
    with pytest.raises(UndoRefused):
        vote_undo(user=labeler, vote_ref=first.vote.pk)


@pytest.mark.django_db
def test_undo_is_refused_once_the_item_is_decided(labelers):
    item = ItemFactory()
    people = labelers(5)
    results = [vote(p, item) for p in people]
    with pytest.raises(UndoRefused):
        vote_undo(user=people[4], vote_ref=results[4].vote.pk)
    item.refresh_from_db()
    assert item.vote_count == 5


@pytest.mark.django_db
def test_nobody_can_undo_someone_elses_vote(labelers):
    from labeling.services import ItemNotFound

    a, b = labelers(2)
    result = vote(a, ItemFactory())
    with pytest.raises(ItemNotFound):
        vote_undo(user=b, vote_ref=result.vote.pk)


@pytest.mark.django_db
def test_adjudication_settles_a_conflict_as_ground_truth(labelers, reviewer):
    item = ItemFactory(campaign=CampaignFactory(votes_required=2, max_votes=2))
    a, b = labelers(2)
    vote(a, item, "Dealer")
    vote(b, item, "Stock")
    item.refresh_from_db()
    assert item.status == "conflict"
    with pytest.raises(UnknownLabel):
        item_adjudicate(item_id=item.pk, label="Blue", user=reviewer)
    item_adjudicate(item_id=item.pk, label="Stock", user=reviewer)
    item.refresh_from_db()
    assert (item.status, item.label) == ("adjudicated", "Stock")
    gt = GroundTruth.objects.get()
    assert (gt.source, gt.value, gt.created_by, gt.votes) == ("adjudication", "Stock", reviewer, 2)
    with pytest.raises(ItemClosed):
        item_adjudicate(item_id=item.pk, label="Dealer", user=reviewer)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_voting_on_one_item_give_exactly_one_decision_and_no_vote_past_it(labelers):
    item = ItemFactory()
    people = labelers(20)
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(person):
        try:
            barrier.wait()
            vote_record(user=person, item_id=item.pk, label="Dealer", client_uuid=uuid.uuid4())
            result = "counted"
        except ItemClosed:
            result = "closed"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    item.refresh_from_db()
    assert outcomes.count("counted") == 5
    assert outcomes.count("closed") == 15
    assert Vote.objects.filter(item=item).count() == 5
    assert (item.status, item.vote_count, item.counts) == ("decided", 5, {"Dealer": 5})
    assert GroundTruth.objects.filter(reference=f"labeling.item:{item.pk}").count() == 1


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_of_one_client_uuid_count_once(labeler):
    item = ItemFactory()
    key = uuid.uuid4()
    barrier = threading.Barrier(8)
    created: list[bool] = []

    def worker():
        barrier.wait()
        try:
            created.append(vote_record(user=labeler, item_id=item.pk, label="Dealer", client_uuid=key).created)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created) == [False] * 7 + [True]
    item.refresh_from_db()
    assert item.vote_count == 1
