"""The hot path (raw SQL in vote_record and items_next, on both databases): round trips, the ON CONFLICT replay,
exact tallies under concurrency; the lease release (skip) and gold masking of the item API."""

import re
import threading
import uuid
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling import services
from labeling.assignment import items_next, lease_release
from labeling.consensus import OPEN, consensus
from labeling.models import CANT_TELL, Item, Lease, Vote
from labeling.services import AlreadyVoted, vote_record
from tests.labeling.conftest import CampaignFactory, ItemFactory
from tests.support import needs_postgres

TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b")


def statements(ctx) -> list[str]:
    """The statements that did work (transaction control left out)."""
    return [q["sql"] for q in ctx.captured_queries if not TRANSACTION_CONTROL.match(q["sql"])]


def vote(user, item, label="Dealer", client_uuid=None):
    return vote_record(user=user, item_id=item.pk, label=label, client_uuid=client_uuid or uuid.uuid4())


@needs_postgres
@pytest.mark.django_db
def test_a_vote_on_postgres_is_two_statements_and_a_deciding_one_adds_only_the_ground_truth(labelers):
    item = ItemFactory()
    people = labelers(5)
    for person in people[:3]:
        vote(person, item)
    with CaptureQueriesContext(connection) as ctx:
        vote(people[3], item)
    assert len(statements(ctx)) == 2
    with CaptureQueriesContext(connection) as ctx:
        result = vote(people[4], item)
    assert len(statements(ctx)) == 3
    assert "classification_groundtruth" in statements(ctx)[2]
    assert (result.item.status, result.item.label, result.vote.item_id) == ("decided", "Dealer", item.pk)
    item.refresh_from_db()
    assert (item.status, item.vote_count, item.top_count, item.counts) == ("decided", 5, 5, {"Dealer": 5})


@needs_postgres
@pytest.mark.django_db
def test_next_on_postgres_is_four_statements_without_gold(labeler):
    campaign = CampaignFactory(gold_rate=0.0)
    for _ in range(6):
        ItemFactory(campaign=campaign)
    with CaptureQueriesContext(connection) as ctx:
        assigned = items_next(user=labeler, campaign=campaign, count=4)
    assert len(assigned) == 4
    # the campaign with the held leases, the in-progress window (empty here), fresh items, re-count and lease
    assert len(statements(ctx)) == 4
    assert Lease.objects.filter(user=labeler).count() == 4
    assert all(a.item.image.thumbnail.name for a in assigned)


@needs_postgres
@pytest.mark.django_db
def test_leases_live_in_an_unlogged_table_on_postgres_so_next_writes_no_wal():
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpersistence FROM pg_class WHERE oid = 'labeling_lease'::regclass")
        assert cursor.fetchone()[0] == "u"


def _blind_lock(monkeypatch):
    """Make the lock statement blind to existing votes, as if they were committed after its snapshot."""
    sql, replays = re.subn(
        r"\(SELECT v\.id FROM labeling_vote v WHERE v\.client_uuid = %\(uuid\)s\)", "NULL", services._READ
    )
    sql, already = re.subn(r"EXISTS \(SELECT 1 FROM labeling_vote v.*?undone_at IS NULL\)", "false", sql, flags=re.S)
    assert (replays, already) == (1, 1)
    monkeypatch.setattr(services, "_READ", sql)


@pytest.mark.django_db
def test_a_replay_that_reaches_the_insert_meets_on_conflict_and_answers_the_original_vote(labeler, monkeypatch):
    item = ItemFactory()
    key = uuid.uuid4()
    first = vote(labeler, item, client_uuid=key)
    _blind_lock(monkeypatch)
    again = vote(labeler, item, "Stock", client_uuid=key)
    assert again.created is False
    assert (again.vote.pk, again.vote.label) == (first.vote.pk, "Dealer")
    item.refresh_from_db()
    assert (item.vote_count, item.counts) == (1, {"Dealer": 1})


@pytest.mark.django_db
def test_a_second_vote_that_reaches_the_insert_is_refused_and_nothing_is_written(labeler, monkeypatch):
    item = ItemFactory()
    vote(labeler, item)
    _blind_lock(monkeypatch)
    with pytest.raises(AlreadyVoted):
        vote(labeler, item, "Stock")
    item.refresh_from_db()
    assert (item.vote_count, item.counts) == (1, {"Dealer": 1})
    assert Vote.objects.filter(item=item).count() == 1


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_with_mixed_answers_keep_the_tally_exactly_the_votes_table(labelers):
    campaign = CampaignFactory(votes_required=5, max_votes=9)
    item = ItemFactory(campaign=campaign)
    people = labelers(20)
    answers = ["Dealer", "Stock", CANT_TELL, "Placeholder"]
    barrier = threading.Barrier(20)

    def worker(i, person):
        try:
            barrier.wait()
            vote_record(user=person, item_id=item.pk, label=answers[i % 4], client_uuid=uuid.uuid4())
        except services.ItemClosed:
            pass
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, p)) for i, p in enumerate(people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    item.refresh_from_db()
    labels = list(Vote.objects.live().filter(item=item).order_by("id").values_list("label", flat=True))
    real = Counter(label for label in labels if label != CANT_TELL)
    assert item.counts == dict(real)
    assert item.cant_tell == labels.count(CANT_TELL)
    assert item.vote_count == len(labels) <= campaign.max_votes
    assert item.top_count == max(real.values(), default=0)
    # Replaying the votes in the order they were counted gives the item's state, and none came after it closed.
    counts: Counter = Counter()
    cant = 0
    for n, label in enumerate(labels, 1):
        if label == CANT_TELL:
            cant += 1
        else:
            counts[label] += 1
        outcome = consensus(counts=counts, cant_tell=cant, votes_required=5, max_votes=9)
        assert outcome.state == OPEN or n == len(labels)
    assert (outcome.state, outcome.label) == (item.status, item.label)


@pytest.mark.django_db
def test_lease_release_gives_a_skipped_item_back_to_the_crowd_at_once(labelers):
    campaign = CampaignFactory(votes_required=1, max_votes=1)
    item = ItemFactory(campaign=campaign)
    first, second = labelers(2)
    assert [a.item.pk for a in items_next(user=first, campaign=campaign, count=1)] == [item.pk]
    assert items_next(user=second, campaign=campaign, count=1) == []  # the one lease it may have is taken
    assert lease_release(user=first, item_id=item.pk) is True
    assert lease_release(user=first, item_id=item.pk) is False  # harmless twice
    assert [a.item.pk for a in items_next(user=second, campaign=campaign, count=1)] == [item.pk]


@pytest.mark.django_db
def test_delete_lease_api_releases_only_the_callers_lease(api_as, labelers):
    campaign = CampaignFactory()
    item = ItemFactory(campaign=campaign)
    me, other = labelers(2)
    items_next(user=me, campaign=campaign, count=1)
    items_next(user=other, campaign=campaign, count=1)
    response = api_as(me).delete(f"/api/v1/items/{item.pk}/lease/")
    assert response.status_code == 204
    assert list(Lease.objects.filter(item=item).values_list("user_id", flat=True)) == [other.pk]
    assert api_as(me).delete(f"/api/v1/items/{item.pk}/lease/").status_code == 204


@pytest.mark.django_db
def test_item_api_shows_a_much_voted_gold_item_like_an_open_real_item(api_as, labelers):
    campaign = CampaignFactory(votes_required=5, max_votes=9)
    gold = ItemFactory(campaign=campaign, is_gold=True, gold_label="Stock")
    people = labelers(12)
    for person in people:
        vote(person, gold, "Stock")
    gold.refresh_from_db()
    assert gold.vote_count == 12  # gold never closes, so its real count passes max_votes
    shown = api_as(people[0]).get(f"/api/v1/items/{gold.pk}/").json()
    assert shown == {"id": gold.pk, "status": "open", "label": "", "vote_count": 4}
    # The vote response and a replay's answer show the same masked state.
    late = labelers(1, prefix="late")[0]
    key = uuid.uuid4()
    body = api_as(late).post("/api/v1/votes/", {"item": gold.pk, "label": "Dealer", "client_uuid": str(key)}).json()
    assert body["item"] == {"id": gold.pk, "status": "open", "label": "", "vote_count": 4}
    replay = api_as(late).post("/api/v1/votes/", {"item": gold.pk, "label": "Dealer", "client_uuid": str(key)})
    assert replay.status_code == 200
    assert replay.json()["item"]["vote_count"] == 4
    assert Item.objects.get(pk=gold.pk).vote_count == 13


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_the_hot_statements_are_prepared_once_per_connection_unless_turned_off(labelers, settings):
    connection.close()  # a fresh connection: no statements prepared yet
    campaign = CampaignFactory()
    items = [ItemFactory(campaign=campaign) for _ in range(3)]
    first, second = labelers(2)
    vote(first, items[0])
    vote(first, items[1])
    items_next(user=first, campaign=campaign, count=1)
    prepared = _prepared_statements()
    assert sum("dropped_lease" in sql for sql in prepared) == 1  # planned once, reused by the second vote
    assert any("INSERT INTO labeling_lease" in sql for sql in prepared)

    settings.LABELING_PREPARED_STATEMENTS = False
    connection.close()
    result = vote(second, items[2])
    assert result.created and result.item.vote_count == 1
    assert _prepared_statements() == []
