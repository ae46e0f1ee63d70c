"""The consensus rule: a table of cases, and properties over every voting sequence hypothesis tries."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeling.consensus import (
    CONFLICT,
    DECIDED,
    OPEN,
    WEIGHTED,
    Rule,
    consensus,
    lease_capacity,
    lease_capacity_sql,
)


@pytest.mark.parametrize(
    ("counts", "cant_tell", "state", "label", "margin"),
    [
        ({}, 0, OPEN, "", 0),
        ({"Dealer": 4}, 0, OPEN, "", 4),
        ({"Dealer": 5}, 0, DECIDED, "Dealer", 5),
        ({"Dealer": 5, "Stock": 3}, 1, DECIDED, "Dealer", 2),
        ({"Dealer": 4, "Stock": 4}, 0, OPEN, "", 0),  # 8 votes, one left could make 5
        ({"Dealer": 4, "Stock": 4}, 1, CONFLICT, "", 0),  # 9 votes, nobody at 5
        ({"Dealer": 3, "Stock": 3}, 1, OPEN, "", 0),  # 7 votes: 3 + 2 remaining = 5 still reachable
        ({"Dealer": 3, "Stock": 3}, 2, CONFLICT, "", 0),  # 8 votes: 3 + 1 remaining < 5
        ({"Dealer": 4, "Stock": 3}, 0, OPEN, "", 1),  # 4 + 2 remaining can still reach 5
        ({"Dealer": 4}, 4, OPEN, "", 4),  # can't tell only uses up the budget
        ({"Dealer": 4}, 5, CONFLICT, "", 4),
        ({}, 5, CONFLICT, "", 0),  # 0 + 4 remaining < 5
        ({}, 4, OPEN, "", 0),  # a fresh label could still get all 5 remaining
        ({"Dealer": 2, "Stock": 2, "Placeholder": 2}, 0, OPEN, "", 0),  # 6 votes: 2 + 3 remaining = 5
        ({"Dealer": 4, "Stock": 2, "Placeholder": 2}, 1, CONFLICT, "", 2),  # budget spent, best is 4
    ],
)
def test_consensus_table(counts, cant_tell, state, label, margin):
    outcome = consensus(counts=counts, cant_tell=cant_tell, votes_required=5, max_votes=9)
    assert (outcome.state, outcome.label, outcome.margin) == (state, label, margin)


def test_single_vote_campaign_decides_at_once():
    assert consensus(counts={"yes": 1}, cant_tell=0, votes_required=1, max_votes=1).state == DECIDED
    assert consensus(counts={}, cant_tell=1, votes_required=1, max_votes=1).state == CONFLICT


@pytest.mark.parametrize(
    "kwargs",
    [
        {"counts": {"a": 10}, "cant_tell": 0, "votes_required": 5, "max_votes": 9},
        {"counts": {"a": -1}, "cant_tell": 0, "votes_required": 5, "max_votes": 9},
        {"counts": {}, "cant_tell": 0, "votes_required": 5, "max_votes": 4},
        {"counts": {}, "cant_tell": 0, "votes_required": 0, "max_votes": 4},
    ],
)
def test_impossible_tallies_are_refused(kwargs):
    with pytest.raises(ValueError):
        consensus(**kwargs)


# (counts, can't tell, votes_required, max_votes) -> how many people the item may be leased to at once.
CAPACITY_CASES = [
    ({}, 0, 5, 9, 5),  # fresh: five agreeing answers decide, five can't tells make a conflict
    ({"Dealer": 4}, 0, 5, 9, 1),  # one more Dealer decides
    ({"Dealer": 3, "Stock": 3}, 0, 5, 9, 2),
    ({"Dealer": 3, "Stock": 3}, 1, 5, 9, 1),  # one can't tell makes it a conflict (3 + 1 left < 5)
    ({"Dealer": 2, "Stock": 2, "Placeholder": 2}, 0, 5, 9, 1),
    ({"Dealer": 4, "Stock": 4}, 0, 5, 9, 1),
    ({"a": 1}, 0, 3, 5, 2),
    ({}, 0, 3, 3, 1),  # unanimity: any answer but the first one's may close it
    ({}, 0, 1, 1, 1),
]


@pytest.mark.parametrize(("counts", "cant_tell", "required", "max_votes", "capacity"), CAPACITY_CASES)
def test_lease_capacity_is_the_fewest_answers_that_could_close_the_item(
    counts, cant_tell, required, max_votes, capacity
):
    total = sum(counts.values()) + cant_tell
    top = max(counts.values(), default=0)
    assert lease_capacity(top=top, total=total, votes_required=required, max_votes=max_votes) == capacity


@pytest.mark.django_db
@pytest.mark.parametrize(("counts", "cant_tell", "required", "max_votes", "capacity"), CAPACITY_CASES)
def test_the_assignment_query_computes_the_same_lease_capacity(counts, cant_tell, required, max_votes, capacity):
    from django.db import connection

    total = sum(counts.values()) + cant_tell
    top = max(counts.values(), default=0)
    sql = lease_capacity_sql(top="%(top)s", total="%(total)s", votes_required="%(r)s", max_votes="%(m)s")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", {"top": top, "total": total, "r": required, "m": max_votes})
        assert cursor.fetchone()[0] == capacity


# The weighted rule: (counts, cant tell, min_votes, max_votes, capacity). Phone's room max(min_votes - top, 1),
# capped by the answers left before the item closes at max_votes whatever they are.
WEIGHTED_CAPACITY_CASES = [
    ({}, 0, 2, 9, 2),
    ({}, 0, 3, 9, 3),
    ({"Dealer": 1}, 0, 2, 9, 1),  # one more may decide
    ({"Dealer": 3, "Stock": 3}, 0, 2, 9, 1),  # past min_votes: at least one
    ({"Dealer": 1, "Stock": 1}, 0, 4, 4, 2),  # 2 answers left before max_votes
    ({"Dealer": 1, "Stock": 1}, 1, 4, 4, 1),  # can't tell counts toward max_votes
    ({"Dealer": 1}, 0, 5, 3, 2),  # min_votes is never read past max_votes
]


@pytest.mark.parametrize(("counts", "cant_tell", "min_votes", "max_votes", "capacity"), WEIGHTED_CAPACITY_CASES)
def test_weighted_lease_capacity_never_exceeds_the_answers_left_before_max_votes(
    counts, cant_tell, min_votes, max_votes, capacity
):
    total = sum(counts.values()) + cant_tell
    top = max(counts.values(), default=0)
    rule = Rule(mode=WEIGHTED, votes_required=5, max_votes=max_votes, n_labels=3, min_votes=min_votes)
    assert rule.lease_capacity(top=top, total=total) == capacity
    assert 1 <= capacity <= max_votes - total


@pytest.mark.django_db
@pytest.mark.parametrize(("counts", "cant_tell", "min_votes", "max_votes", "capacity"), WEIGHTED_CAPACITY_CASES)
def test_the_assignment_query_computes_the_same_weighted_lease_capacity(
    counts, cant_tell, min_votes, max_votes, capacity
):
    from django.db import connection

    total = sum(counts.values()) + cant_tell
    top = max(counts.values(), default=0)
    sql = lease_capacity_sql(
        top="%(top)s", total="%(total)s", votes_required="%(r)s", max_votes="%(m)s", weighted=True, min_votes="%(n)s"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", {"top": top, "total": total, "r": 5, "m": max_votes, "n": min_votes})
        assert cursor.fetchone()[0] == capacity


def test_the_count_rules_capacity_through_rule_is_the_default_one():
    for counts, cant_tell, required, max_votes, capacity in CAPACITY_CASES:
        total = sum(counts.values()) + cant_tell
        top = max(counts.values(), default=0)
        rule = Rule(mode="count", votes_required=required, max_votes=max_votes, n_labels=3, min_votes=1)
        assert rule.lease_capacity(top=top, total=total) == capacity


@settings(max_examples=300, deadline=None)
@given(
    required=st.integers(1, 6),
    extra=st.integers(0, 5),
    history=st.lists(st.sampled_from(["A", "B", "C", "cant_tell"]), max_size=12),
    future=st.lists(st.sampled_from(["A", "B", "C", "cant_tell"]), max_size=12),
)
def test_every_leased_answer_is_counted_and_one_more_lease_could_be_wasted(required, extra, history, future):
    max_votes = required + extra

    def state(votes):
        counts = {label: votes.count(label) for label in set(votes) - {"cant_tell"}}
        return consensus(
            counts=counts, cant_tell=votes.count("cant_tell"), votes_required=required, max_votes=max_votes
        )

    # Replay a history up to where it closes; its capacity bounds how many answers are surely counted.
    votes = []
    for label in history:
        if state(votes).state != OPEN:
            break
        votes.append(label)
    now = state(votes)
    if now.state != OPEN:
        return
    capacity = lease_capacity(top=now.top, total=now.total, votes_required=required, max_votes=max_votes)
    assert capacity >= 1
    # Whatever the first capacity - 1 leased answers are, the item is still open for the last one.
    assert state(votes + future[: capacity - 1]).state == OPEN
    # And capacity + 1 leases could waste one: some capacity answers close it.
    top_label = max("ABC", key=lambda label: (votes.count(label), label == "A"))
    closers = [[top_label] * capacity, ["cant_tell"] * capacity]
    assert any(state(votes + closer).state != OPEN for closer in closers)


LABELS = ["A", "B", "C", "cant_tell"]


@st.composite
def campaigns_and_votes(draw):
    required = draw(st.integers(min_value=1, max_value=7))
    maximum = draw(st.integers(min_value=required, max_value=15))
    votes = draw(st.lists(st.sampled_from(LABELS), min_size=0, max_size=30))
    return required, maximum, votes


def run(required: int, maximum: int, votes: list[str]):
    """Apply votes one at a time as the service does: stop counting once the item is not open."""
    counts: dict[str, int] = {}
    cant = 0
    outcome = consensus(counts=counts, cant_tell=cant, votes_required=required, max_votes=maximum)
    history = [outcome]
    for vote in votes:
        if outcome.state != OPEN:
            break
        if vote == "cant_tell":
            cant += 1
        else:
            counts[vote] = counts.get(vote, 0) + 1
        outcome = consensus(counts=counts, cant_tell=cant, votes_required=required, max_votes=maximum)
        history.append(outcome)
    return counts, cant, history


@settings(max_examples=400, deadline=None)
@given(campaigns_and_votes())
def test_never_decided_below_votes_required(case):
    required, maximum, votes = case
    counts, _, history = run(required, maximum, votes)
    for outcome in history:
        if outcome.state == DECIDED:
            assert counts[outcome.label] >= required
            assert outcome.top >= required


@settings(max_examples=400, deadline=None)
@given(campaigns_and_votes())
def test_never_more_than_max_votes_counted(case):
    required, maximum, votes = case
    counts, cant, history = run(required, maximum, votes)
    assert sum(counts.values()) + cant <= maximum
    # When the budget is spent, the item is never left open.
    if history[-1].total == maximum:
        assert history[-1].state != OPEN


@settings(max_examples=400, deadline=None)
@given(campaigns_and_votes())
def test_conflict_exactly_when_no_label_can_still_reach_the_bar(case):
    required, maximum, votes = case
    _, _, history = run(required, maximum, votes)
    for outcome in history:
        reachable = outcome.top + (maximum - outcome.total) >= required
        if outcome.top < required:
            assert (outcome.state == CONFLICT) == (not reachable)


@settings(max_examples=300, deadline=None)
@given(campaigns_and_votes())
def test_cant_tell_never_decides_and_only_spends_the_budget(case):
    required, maximum, votes = case
    only_cant = ["cant_tell"] * len(votes)
    counts, cant, history = run(required, maximum, only_cant)
    assert counts == {}
    assert all(o.state != DECIDED for o in history)
    assert cant <= maximum
