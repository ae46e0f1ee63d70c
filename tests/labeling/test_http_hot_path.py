"""The labeling loop as phones drive it over HTTP (token auth, next + vote, the batch upload): the queries each
call costs on either database, leases capped and released, and how long a revoked token or role survives."""

import uuid

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.assignment import items_next
from labeling.models import CANT_TELL, Item, Lease, Vote
from labeling.services import vote_record
from tests.labeling.conftest import CampaignFactory, ItemFactory
from tests.support import needs_postgres


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def answer(item, label="Dealer", key=None) -> dict:
    return {"item": item.pk, "label": label, "client_uuid": str(key or uuid.uuid4())}


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.mark.django_db
def test_next_through_the_api_costs_a_fixed_number_of_queries_with_token_auth(labeler, django_assert_max_num_queries):
    campaign = CampaignFactory(gold_rate=0.0)
    items = [ItemFactory(campaign=campaign) for _ in range(8)]
    client = token_client(labeler)
    client.post("/api/v1/votes/", answer(items[0]), format="json")  # the token and roles are now remembered
    # the campaign with the held leases, the picks (in-progress window, then fresh items), the lease insert
    # (+ the savepoint pair of the test transaction)
    with django_assert_max_num_queries(6):
        response = client.post(f"/api/v1/campaigns/{campaign.pk}/next/", {"count": 4}, format="json")
    assert len(response.json()["items"]) == 4
    for n in range(3):  # flat in the caller's history
        client.post("/api/v1/votes/", answer(items[1 + n]), format="json")
        with django_assert_max_num_queries(6):
            client.post(f"/api/v1/campaigns/{campaign.pk}/next/", {"count": 2, "exclude": [1]}, format="json")


@pytest.mark.django_db
def test_vote_through_the_api_costs_a_fixed_number_of_queries_with_token_auth(labelers, django_assert_max_num_queries):
    campaign = CampaignFactory(votes_required=2, max_votes=3)
    items = [ItemFactory(campaign=campaign) for _ in range(3)]
    first, second = (token_client(user) for user in labelers(2))
    first.post("/api/v1/votes/", answer(items[0]), format="json")
    second.post("/api/v1/votes/", answer(items[1]), format="json")
    # PostgreSQL: lock + read, insert + tally; SQLite: lease drop, read, insert, tally (+ savepoints)
    with django_assert_max_num_queries(4 if is_postgres() else 6):
        assert first.post("/api/v1/votes/", answer(items[2]), format="json").status_code == 201
    # A deciding vote adds the ground truth (and on SQLite the release of the item's leases).
    with django_assert_max_num_queries(5 if is_postgres() else 8):
        response = second.post("/api/v1/votes/", answer(items[0]), format="json")
    assert response.json()["item"]["status"] == "decided"


@pytest.mark.django_db
def test_a_batch_upload_records_each_answer_once_and_answers_per_answer(labelers):
    campaign = CampaignFactory(votes_required=1, max_votes=1)
    open_item, decided = ItemFactory(campaign=campaign), ItemFactory(campaign=campaign)
    me, other = labelers(2)
    vote_record(user=other, item_id=decided.pk, label="Stock", client_uuid=uuid.uuid4())
    client = token_client(me)
    fresh = answer(open_item)
    batch = [fresh, answer(decided), answer(open_item, "Purple"), {"item": open_item.pk, "label": "Dealer"}]
    response = client.post("/api/v1/votes/batch/", {"votes": batch}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 409, 400, 400]
    assert results[0]["vote"]["item"]["status"] == "decided"
    assert results[1]["error"]["code"] == "item_closed"
    assert results[1]["error"]["item"]["label"] == "Stock"
    assert results[2]["error"]["code"] == "unknown_label"
    assert results[3]["error"]["fields"]["client_uuid"]
    # Re-sent after a lost response: the recorded answer is a replay (200), nothing is counted twice.
    again = client.post("/api/v1/votes/batch/", {"votes": [fresh]}, format="json").json()["results"]
    assert (again[0]["status"], again[0]["vote"]["id"]) == (200, results[0]["vote"]["id"])
    assert Vote.objects.filter(item=open_item).count() == 1


@pytest.mark.django_db
def test_a_batch_must_be_a_short_list(labeler):
    client = token_client(labeler)
    assert client.post("/api/v1/votes/batch/", {"votes": []}, format="json").json()["error"]["code"] == "invalid"
    too_many = [answer(ItemFactory.build(pk=1)) for _ in range(51)]
    assert client.post("/api/v1/votes/batch/", {"votes": too_many}, format="json").status_code == 400


@pytest.mark.django_db
def test_an_item_is_leased_only_to_as_many_as_can_answer_before_it_may_become_a_conflict(labelers):
    campaign = CampaignFactory(votes_required=5, max_votes=9, gold_rate=0.0)
    item = ItemFactory(campaign=campaign)
    voters, waiting = labelers(7), labelers(3, prefix="w")
    for person, label in zip(voters, ["Dealer"] * 3 + ["Stock"] * 3 + [CANT_TELL], strict=True):
        vote_record(user=person, item_id=item.pk, label=label, client_uuid=uuid.uuid4())
    # Dealer 3, Stock 3, can't tell 1: one more can't tell makes it a conflict, so one lease only.
    served = [len(items_next(user=person, campaign=campaign, count=1)) for person in waiting]
    assert served == [1, 0, 0]


@pytest.mark.django_db
def test_the_vote_that_closes_an_item_releases_every_lease_on_it(labelers):
    campaign = CampaignFactory(votes_required=2, max_votes=3, gold_rate=0.0)
    item = ItemFactory(campaign=campaign)
    a, b, c = labelers(3)
    for person in (a, b):
        assert [x.item.pk for x in items_next(user=person, campaign=campaign, count=1)] == [item.pk]
    vote_record(user=c, item_id=item.pk, label="Dealer", client_uuid=uuid.uuid4())
    assert Lease.objects.filter(item=item).count() == 2  # still open: both may answer
    vote_record(user=a, item_id=item.pk, label="Dealer", client_uuid=uuid.uuid4())
    assert Item.objects.get(pk=item.pk).status == "decided"
    assert not Lease.objects.filter(item=item).exists()


@pytest.mark.django_db
def test_a_deleted_token_or_a_removed_role_is_refused_at_once_in_the_process_that_saved_it(labeler, campaign):
    from django.contrib.auth.models import Group

    client = token_client(labeler)
    url = f"/api/v1/campaigns/{campaign.pk}/next/"
    assert client.post(url, {}, format="json").status_code == 200
    labeler.groups.remove(Group.objects.get(name="labeler"))
    assert client.post(url, {}, format="json").status_code == 403
    Token.objects.filter(user=labeler).delete()
    assert client.post(url, {}, format="json").status_code == 401


@pytest.mark.django_db
def test_another_process_revoking_a_token_takes_effect_within_auth_cache_seconds(labeler, campaign, monkeypatch):
    from core import memo

    client = token_client(labeler)
    url = f"/api/v1/campaigns/{campaign.pk}/next/"
    assert client.post(url, {}, format="json").status_code == 200
    Token.objects.filter(user=labeler).update(key="0" * 40)  # like another process: no signal reaches us
    assert client.post(url, {}, format="json").status_code == 200  # still remembered
    later = memo.time.monotonic() + 31
    monkeypatch.setattr(memo.time, "monotonic", lambda: later)
    assert client.post(url, {}, format="json").status_code == 401


def _seed_history(*, user, campaign, answered: int, fresh: int) -> None:
    """``answered`` open items the user answered (as a lone labeler leaves them), then ``fresh`` unanswered."""
    from classification.models import Image

    images = Image.objects.bulk_create(
        [Image(sha256=uuid.uuid4().hex * 2, width=1, height=1) for _ in range(answered + fresh)]
    )
    items = Item.objects.bulk_create([Item(campaign=campaign, image=image) for image in images])
    Vote.objects.bulk_create(
        [Vote(item=item, user=user, label="Dealer", client_uuid=uuid.uuid4()) for item in items[:answered]]
    )
    Item.objects.filter(pk__in=[item.pk for item in items[:answered]]).update(
        top_count=1, vote_count=1, counts={"Dealer": 1}
    )


@pytest.mark.django_db
def test_a_lone_labeler_with_a_long_history_still_gets_fresh_items(labeler):
    campaign = CampaignFactory(gold_rate=0.0)
    _seed_history(user=labeler, campaign=campaign, answered=300, fresh=5)
    served = items_next(user=labeler, campaign=campaign, count=4)
    assert len(served) == 4
    assert not Vote.objects.filter(user=labeler, item_id__in=[a.item.pk for a in served]).exists()


def _item_rows_read(plan: dict) -> int:
    """Rows of labeling_item the executor read, over every node of an EXPLAIN (ANALYZE, FORMAT JSON) plan."""
    rows = (
        plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1) if plan.get("Relation Name") == "labeling_item" else 0
    )
    return rows + sum(_item_rows_read(child) for child in plan.get("Plans", []))


@needs_postgres
@pytest.mark.django_db
@pytest.mark.parametrize("answered", [0, 600])
def test_next_reads_a_bounded_number_of_items_whatever_the_callers_history_explain(labeler, answered):
    from django.utils import timezone

    from labeling import assignment
    from labeling.prepared import datetime_value, ids

    campaign = CampaignFactory(gold_rate=0.0)
    _seed_history(user=labeler, campaign=campaign, answered=answered, fresh=400)
    now = datetime_value(timezone.now())
    params = {"user": labeler.pk, "campaign": campaign.pk, "now": now, "expires": now, "required": 5,
              "max_votes": 9, "exclude": ids([]), "count": 8}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        read = 0
        for scope in ("window", "fresh"):
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + assignment._sql("pick", scope), params)
            plan = cursor.fetchone()[0][0]["Plan"]
            read += _item_rows_read(plan)
    # The window's in-progress items (twice: its id list and the rows) and the fresh items it leases.
    assert read <= 2 * assignment.WINDOW + 8


# --- The phone's rule and flags on the same hot path (issue 13 merged into issue 14's) ----------------------


@pytest.mark.django_db
def test_a_weighted_item_is_leased_only_to_as_many_as_can_answer_before_max_votes(labelers):
    # Phone's room alone (max(min_votes - top, 1) = 3) would lease it to 3; only 2 answers are left.
    campaign = CampaignFactory(rule="weighted", votes_required=3, min_votes=4, max_votes=4, gold_rate=0.0)
    item = ItemFactory(campaign=campaign)
    voters, waiting = labelers(2), labelers(3, prefix="w")
    for person, label in zip(voters, ["Dealer", "Stock"], strict=True):
        vote_record(user=person, item_id=item.pk, label=label, client_uuid=uuid.uuid4())
    served = [len(items_next(user=person, campaign=campaign, count=1)) for person in waiting]
    assert served == [1, 1, 0]


@pytest.mark.django_db
def test_next_on_a_weighted_campaign_costs_the_same_queries(labeler, django_assert_max_num_queries):
    campaign = CampaignFactory(rule="weighted", min_votes=2, gold_rate=0.0)
    items = [ItemFactory(campaign=campaign) for _ in range(8)]
    client = token_client(labeler)
    client.post("/api/v1/votes/", answer(items[0]), format="json")
    with django_assert_max_num_queries(7):  # as test_next_through_the_api_costs_a_fixed_number_of_queries...
        response = client.post(f"/api/v1/campaigns/{campaign.pk}/next/", {"count": 4}, format="json")
    assert len(response.json()["items"]) == 4


@pytest.mark.django_db
def test_a_flagged_labelers_vote_costs_the_same_queries_and_is_not_counted(labelers, django_assert_max_num_queries):
    from labeling.quality import labeler_flag

    campaign = CampaignFactory(votes_required=2, max_votes=3)
    items = [ItemFactory(campaign=campaign) for _ in range(2)]
    bad = labelers(1)[0]
    client = token_client(bad)
    client.post("/api/v1/votes/", answer(items[0]), format="json")
    labeler_flag(user=bad, source="admin")
    # Whether the voter counts is read in the locking statement: no query more than any vote.
    with django_assert_max_num_queries(4 if is_postgres() else 6):
        assert client.post("/api/v1/votes/", answer(items[1]), format="json").status_code == 201
    assert Item.objects.get(pk=items[1].pk).vote_count == 0


@pytest.mark.django_db
def test_a_vote_on_a_weighted_campaign_also_reads_its_voters_gold_accuracy(labelers, django_assert_max_num_queries):
    campaign = CampaignFactory(rule="weighted", min_votes=2, max_votes=5)
    items = [ItemFactory(campaign=campaign) for _ in range(3)]
    first, second = (token_client(user) for user in labelers(2))
    first.post("/api/v1/votes/", answer(items[0]), format="json")
    second.post("/api/v1/votes/", answer(items[1]), format="json")
    # The count rule's figures plus one: the gold records of the item's other counted voters (the weighted rule
    # needs each voter's accuracy; the caller's own comes with the item's lock; the count rule reads the tally).
    with django_assert_max_num_queries(5 if is_postgres() else 7):
        assert first.post("/api/v1/votes/", answer(items[2]), format="json").status_code == 201


@pytest.mark.django_db
def test_a_flagged_labeler_is_never_served_an_unvoted_looking_item_they_already_answered(labelers):
    from labeling.quality import labeler_flag

    campaign = CampaignFactory(gold_rate=0.0)
    answered, fresh = ItemFactory(campaign=campaign), ItemFactory(campaign=campaign)
    bad = labelers(1)[0]
    labeler_flag(user=bad, source="admin")
    vote_record(user=bad, item_id=answered.pk, label="Dealer", client_uuid=uuid.uuid4())
    assert Item.objects.get(pk=answered.pk).vote_count == 0  # kept, not counted: it looks fresh
    assert [a.item.pk for a in items_next(user=bad, campaign=campaign, count=5)] == [fresh.pk]


@pytest.mark.django_db
def test_a_vote_answer_is_exactly_what_the_documented_serializer_gives(labelers):
    from labeling.api.serializers import VoteSerializer, vote_payload

    campaign = CampaignFactory(votes_required=1, max_votes=1)
    gold = ItemFactory(campaign=campaign, is_gold=True, gold_label="Stock")
    first, second = labelers(2)
    open_vote = vote_record(user=first, item_id=gold.pk, label="Dealer", client_uuid=uuid.uuid4()).vote
    real = ItemFactory(campaign=campaign)
    decided = vote_record(user=second, item_id=real.pk, label="Stock", client_uuid=uuid.uuid4())
    undone = Vote.objects.select_related("item__campaign").get(pk=open_vote.pk)
    undone.undone_at = undone.created_at
    for vote in (open_vote, decided.vote, undone):
        assert vote_payload(vote) == VoteSerializer(vote).data


# The plainly valid inputs the hot endpoints read without a serializer, and inputs that must go to it.
PLAIN_VOTES = [
    {"item": 3, "label": "Dealer", "client_uuid": "5f0c6f3e-3b7c-4b3e-9d3a-0f6b1b2b3c4d"},
    {"item": 3, "label": "cant_tell", "client_uuid": "5F0C6F3E3B7C4B3E9D3A0F6B1B2B3C4D", "ms_to_answer": 700},
    {"item": 3, "label": "Stock", "client_uuid": "{5f0c6f3e-3b7c-4b3e-9d3a-0f6b1b2b3c4d}", "ms_to_answer": None},
]
JUDGED_VOTES = [
    {"item": "3", "label": "Dealer", "client_uuid": "5f0c6f3e-3b7c-4b3e-9d3a-0f6b1b2b3c4d"},
    {"item": 3, "label": " Dealer ", "client_uuid": "5f0c6f3e-3b7c-4b3e-9d3a-0f6b1b2b3c4d"},
    {"item": True, "label": "Dealer", "client_uuid": "5f0c6f3e-3b7c-4b3e-9d3a-0f6b1b2b3c4d"},
    {"item": 0, "label": "Dealer", "client_uuid": "5f0c6f3e-3b7c-4b3e-9d3a-0f6b1b2b3c4d"},
    {"item": 3, "label": "x" * 41, "client_uuid": "5f0c6f3e-3b7c-4b3e-9d3a-0f6b1b2b3c4d"},
    {"item": 3, "label": "Dealer", "client_uuid": "not-a-uuid"},
    {"item": 3, "label": "Dealer", "client_uuid": "5f0c6f3e-3b7c-4b3e-9d3a-0f6b1b2b3c4d", "ms_to_answer": -1},
    {"item": 3, "label": "Dealer"},
    ["not", "an", "object"],
]


@pytest.mark.parametrize("data", PLAIN_VOTES + JUDGED_VOTES)
def test_vote_input_read_without_a_serializer_equals_the_serializers_verdict(data):
    from labeling.api.serializers import VoteInputSerializer, vote_input

    serializer = VoteInputSerializer(data=data)
    valid, errors = vote_input(data)
    if serializer.is_valid():
        assert (dict(valid), errors) == (dict(serializer.validated_data), None)
    else:
        assert (valid, errors) == (None, serializer.errors)


@pytest.mark.parametrize(
    "data",
    [{}, {"count": 8}, {"count": 8, "exclude": [1, 2]}, {"count": 8, "exclude": []}, {"count": 0}, {"count": 21},
     {"count": "3"}, {"count": False}, {"exclude": [0]}, {"exclude": list(range(1, 202))}, {"exclude": "1"}],
)  # fmt: skip
def test_next_input_read_without_a_serializer_equals_the_serializers_verdict(data):
    from rest_framework.exceptions import ValidationError

    from labeling.api.serializers import NextInputSerializer, next_input

    serializer = NextInputSerializer(data=data)
    if serializer.is_valid():
        assert next_input(data) == dict(serializer.validated_data)
    else:
        with pytest.raises(ValidationError) as refused:
            next_input(data)
        assert refused.value.detail == serializer.errors


# The short way through DRF (core.api_hot) and DRF's own dispatch must answer alike. An Accept listing two
# types still negotiates JSON, but only DRF reads it: the same requests go the long way.
SHORT = {"HTTP_ACCEPT": "application/json"}
LONG = {"HTTP_ACCEPT": "application/json, text/html;q=0.5"}
ANSWER_HEADERS = ("Content-Type", "Allow", "Vary")


def _exchanges(client, calls, accept, monkeypatch) -> tuple[list, int]:
    """Each call's (status, answer headers, body) with the database rolled back after, and how many of them
    went through DRF's dispatch."""
    from datetime import UTC, datetime

    from django.db import transaction
    from django.utils import timezone
    from rest_framework.views import APIView

    dispatched = []
    dispatch = APIView.dispatch
    monkeypatch.setattr(APIView, "dispatch", lambda self, *a, **k: dispatched.append(1) or dispatch(self, *a, **k))
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 12, 3, 2, 0, tzinfo=UTC))
    out = []
    with transaction.atomic():
        for path, body in calls:
            response = client.post(path, body, format="json", **accept)
            data = response.json()
            for vote in [
                data.get("vote") if "item" not in data else data,
                *[r.get("vote") for r in data.get("results", [])],
            ]:
                if vote and "client_uuid" in vote:
                    vote["id"] = "a vote id"  # sequences are not rolled back on PostgreSQL
            out.append((response.status_code, [response.get(h) for h in ANSWER_HEADERS], data))
        transaction.set_rollback(True)
    monkeypatch.undo()
    return out, len(dispatched)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("auth", ["token", "session"])
def test_the_short_way_through_drf_answers_byte_for_byte_as_drf_does(labelers, monkeypatch, auth):
    campaign = CampaignFactory(votes_required=1, max_votes=1, gold_rate=0.0)
    open_item, closed = ItemFactory(campaign=campaign), ItemFactory(campaign=campaign)
    me, other = labelers(2)
    vote_record(user=other, item_id=closed.pk, label="Stock", client_uuid=uuid.uuid4())
    if auth == "token":
        client = token_client(me)
        client.post("/api/v1/votes/batch/", {}, format="json")  # remembers the token
    else:
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(me)
        client.cookies["csrftoken"] = "k" * 32
        client.credentials(HTTP_X_CSRFTOKEN="k" * 32)
    fresh = answer(open_item)
    calls = [
        (f"/api/v1/campaigns/{campaign.pk}/next/", {"count": 2}),
        ("/api/v1/votes/", fresh),  # 201
        ("/api/v1/votes/", fresh),  # 200, a replay
        ("/api/v1/votes/", answer(open_item, "Purple")),  # 400 unknown label (the service's refusal)
        ("/api/v1/votes/", answer(closed)),  # 409 with the item's state
        ("/api/v1/votes/", {**answer(closed), "item": 10**9}),  # 404
        ("/api/v1/votes/batch/", {"votes": [fresh, answer(closed), {"item": 1}]}),
        ("/api/v1/campaigns/999999/next/", {}),  # 404: given back to DRF
        ("/api/v1/votes/", {"item": "x"}),  # 400: given back to DRF
    ]
    short, short_dispatched = _exchanges(client, calls, SHORT, monkeypatch)
    long, long_dispatched = _exchanges(client, calls, LONG, monkeypatch)
    assert short == long
    assert [s for s, _, _ in short] == [200, 201, 200, 400, 409, 404, 200, 404, 400]
    assert (short_dispatched, long_dispatched) == (2, len(calls))


@pytest.mark.django_db
def test_a_session_post_without_its_csrf_token_is_refused_by_drf(labeler, campaign):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(labeler)
    response = client.post(f"/api/v1/campaigns/{campaign.pk}/next/", {}, format="json", **SHORT)
    assert response.status_code == 403
    assert response.json()["error"]["message"].startswith("CSRF Failed")
    assert not Lease.objects.exists()


@pytest.mark.django_db
def test_an_empty_accept_is_refused_as_drf_refuses_it_and_nothing_is_recorded(labeler, campaign):
    client = token_client(labeler)
    client.post("/api/v1/votes/batch/", {}, format="json")  # remembers the token: the short way could answer
    item = ItemFactory(campaign=campaign)
    response = client.post("/api/v1/votes/", answer(item), format="json", HTTP_ACCEPT="")
    assert response.status_code == 406
    assert not Vote.objects.exists()


@pytest.mark.django_db
def test_a_token_header_split_on_a_non_ascii_space_is_refused_as_drf_refuses_it(labeler, campaign):
    client = token_client(labeler)
    client.post("/api/v1/votes/batch/", {}, format="json")  # remembers the token: the short way could answer
    key = Token.objects.get(user=labeler).key
    client.credentials(HTTP_AUTHORIZATION=f"Token\xa0{key}")  # one word for DRF: no token, no session
    response = client.post(f"/api/v1/campaigns/{campaign.pk}/next/", {}, format="json")
    assert response.status_code == 401
    assert not Lease.objects.exists()
