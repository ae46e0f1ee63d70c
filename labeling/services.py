"""Writes of the labeling app: recording and undoing votes, adjudicating conflicts.

Every write that touches an item's tally locks the item's row first, so concurrent votes on one item are
applied one at a time and no vote is accepted past a decision.
"""

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from classification.models import GroundTruth, Image
from classification.services import ground_truth_record
from classification.vocabulary import choices_for
from core.errors import ApplicationError
from labeling import quality
from labeling.consensus import CONFLICT, DECIDED
from labeling.models import CANT_TELL, Campaign, Item, Vote
from labeling.prepared import (
    datetime_value,
    hot_cursor,
    is_postgres,
    json_column,
    json_param,
    lock_rows,
    uuid_value,
    write_transaction,
)


class LabelingError(ApplicationError):
    """A refused write; ``code`` and ``status`` map it to the API's error shape. A refusal about an item
    that is no longer open (409) also answers the item's state, read when the answer is built."""

    def __init__(self, message: str, *, item: Item | None = None, vote: Vote | None = None):
        super().__init__(message)
        self.item = item
        self.vote = vote

    @property
    def extra(self) -> dict:
        if self.item is None or self.status != 409:
            return {}
        from labeling.api.serializers import item_state

        return {"item": item_state(self.item)}


class UnknownLabel(LabelingError):
    code, status = "unknown_label", 400


class ItemNotFound(LabelingError):
    code, status = "not_found", 404


class ItemClosed(LabelingError):
    code, status = "item_closed", 409


class AlreadyVoted(LabelingError):
    code, status = "already_voted", 409


class UuidReused(LabelingError):
    code, status = "client_uuid_reused", 409


class UndoRefused(LabelingError):
    code, status = "undo_refused", 409


@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    created: bool  # False: a replay of a vote already recorded (answer 200, count nothing)
    item: Item


def item_reference(item: Item) -> str:
    return f"labeling.item:{item.pk}"


def _replay(vote: Vote, *, user: AbstractBaseUser) -> VoteResult:
    if vote.user_id != user.pk:
        raise UuidReused("this client_uuid belongs to another vote; generate a new one per answer")
    return VoteResult(vote=vote, created=False, item=vote.item)


def _apply(item: Item, label: str, delta: int) -> None:
    """Add (delta=1) or remove (delta=-1) one vote to the item's tally, in memory."""
    if label == CANT_TELL:
        item.cant_tell += delta
    else:
        counts = dict(item.counts)
        counts[label] = counts.get(label, 0) + delta
        item.counts = {k: v for k, v in counts.items() if v > 0}
    item.vote_count += delta
    item.top_count = max(item.counts.values(), default=0)


def vote_record(
    *,
    user: AbstractBaseUser,
    item_id: int,
    label: str,
    client_uuid: uuid.UUID,
    ms_to_answer: int | None = None,
    at: datetime | None = None,
) -> VoteResult:
    """Record one answer, idempotently by ``client_uuid``; decide or close the item when the rule says so.

    When the item closes (decided or conflict) the leases others hold on it are released.
    Raises UnknownLabel, ItemNotFound, ItemClosed (decided/conflict: not counted), AlreadyVoted, UuidReused.
    """
    with write_transaction():
        return _vote_record(
            user=user, item_id=item_id, label=label, client_uuid=client_uuid, ms_to_answer=ms_to_answer, at=at
        )


# The hot path in raw SQL, the same statements on PostgreSQL and SQLite (labeling/prepared.py spells the few
# differences): the ORM spent ~3 ms of Python per vote building them. (1) Drop the caller's lease, lock the
# item (FOR NO KEY UPDATE on PostgreSQL: inserts referencing it are not blocked; SQLite's IMMEDIATE
# transaction holds the write lock) and read its tally with the campaign's rule and the replay/already-voted
# answers; (2) insert the vote with ON CONFLICT DO NOTHING and write the new tally (and release every lease
# on the item when this vote closes it) only if the insert happened. A conflict there (a replay, or this
# user's other vote, committed after statement 1's snapshot) is resolved by a lookup instead of an
# IntegrityError + savepoint. On PostgreSQL each step is one statement (data-modifying CTEs).
_DROP_LEASE = "DELETE FROM labeling_lease WHERE item_id = %(item)s AND user_id = %(user)s"
_READ = """
SELECT i.status, i.label, {counts}, i.cant_tell, i.vote_count, i.top_count, i.is_gold, i.image_id,
       i.campaign_id, c.attribute, c.votes_required, c.max_votes, c.rule, c.min_votes, c.threshold,
       (SELECT v.id FROM labeling_vote v WHERE v.client_uuid = %(uuid)s),
       EXISTS (SELECT 1 FROM labeling_vote v
               WHERE v.item_id = i.id AND v.user_id = %(user)s AND v.undone_at IS NULL),
       s.flagged_at IS NULL, s.gold_correct, s.gold_answered
FROM labeling_item i JOIN labeling_campaign c ON c.id = i.campaign_id
LEFT JOIN labeling_labelerstanding s ON s.user_id = %(user)s
WHERE i.id = %(item)s
{lock}
"""
_INSERT = """
INSERT INTO labeling_vote (item_id, user_id, label, client_uuid, ms_to_answer, created_at, undone_at)
VALUES (%(item)s, %(user)s, %(label)s, %(uuid)s, %(ms)s, %(now)s, NULL)
ON CONFLICT DO NOTHING
RETURNING id
"""
_TALLY = """
UPDATE labeling_item
SET counts = {counts}, cant_tell = %(cant_tell)s, vote_count = %(vote_count)s,
    top_count = %(top_count)s, status = %(status)s, label = %(label_out)s, decided_at = %(decided_at)s
"""
_RELEASE = "DELETE FROM labeling_lease WHERE item_id = %(item)s"


def _read_sql() -> tuple[str, ...]:
    return _read_sql_for(connection.vendor)


def _write_sql(*, closing: bool) -> tuple[str, ...]:
    """Statements inserting the vote; the last one answers the new vote's id, or nothing when it was not new."""
    return _write_sql_for(connection.vendor, closing)


# Built once per dialect (``vendor`` keys the cache; the fragments read it from the connection), as tuples:
# a cached list could be changed in place by a caller.
@functools.cache
def _read_sql_for(vendor: str) -> tuple[str, ...]:
    read = _READ.format(counts=json_column("i.counts"), lock=lock_rows("i"))
    if is_postgres():
        return (f"WITH dropped_lease AS ({_DROP_LEASE})" + read,)
    return (_DROP_LEASE, read)


@functools.cache
def _write_sql_for(vendor: str, closing: bool) -> tuple[str, ...]:
    tally = _TALLY.format(counts=json_param("counts"))
    if is_postgres():
        release = f", released AS ({_RELEASE} AND EXISTS (SELECT 1 FROM new_vote))" if closing else ""
        return (f"WITH new_vote AS ({_INSERT}){release}{tally} FROM new_vote WHERE labeling_item.id = %(item)s "
                "RETURNING new_vote.id",)  # fmt: skip
    return (_INSERT,)


_ITEM_FIELDS = ["id", "campaign_id", "image_id", "status", "label", "counts", "cant_tell", "vote_count", "top_count",
                "is_gold"]  # fmt: skip


def _item_partial(**values) -> Item:
    """An Item holding only the columns the hot path read (others load lazily, as with ``only()``)."""
    return Item.from_db(connection.alias, _ITEM_FIELDS, [values[name] for name in _ITEM_FIELDS])


def _replay_lookup(*, client_uuid: uuid.UUID, user: AbstractBaseUser) -> VoteResult | None:
    existing = Vote.objects.select_related("item__campaign").filter(client_uuid=client_uuid).first()
    return None if existing is None else _replay(existing, user=user)


def _vote_record(*, user, item_id, label, client_uuid, ms_to_answer, at) -> VoteResult:
    params = {"item": item_id, "user": user.pk, "uuid": uuid_value(client_uuid)}
    with hot_cursor() as cursor:
        for sql in _read_sql():
            cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            replay = _replay_lookup(client_uuid=client_uuid, user=user)
            if replay is not None:
                return replay
            raise ItemNotFound(f"no item {item_id}")
        (status, label_now, counts_text, cant_tell, vote_count, top_count, is_gold, image_id, campaign_id,
         attribute, votes_required, max_votes, rule, min_votes, threshold, replay_id, already,
         counted, gold_correct, gold_answered) = row  # fmt: skip
        item = _item_partial(
            id=item_id,
            campaign_id=campaign_id,
            image_id=image_id,
            status=status,
            label=label_now,
            counts=json.loads(counts_text),
            cant_tell=cant_tell,
            vote_count=vote_count,
            top_count=top_count,
            is_gold=bool(is_gold),
        )
        # The campaign's rule columns came with the lock: item_state (gold masking) reads them without a query.
        item.campaign = Campaign.from_db(
            connection.alias,
            ["id", "attribute", "votes_required", "max_votes", "rule", "min_votes", "threshold"],
            [campaign_id, attribute, votes_required, max_votes, rule, min_votes, threshold],
        )
        if replay_id is not None:
            return _replay(Vote.objects.select_related("item__campaign").get(pk=replay_id), user=user)
        allowed = {*choices_for(attribute), CANT_TELL}
        if label not in allowed:
            raise UnknownLabel(
                f"{label!r} is not an answer to this campaign; expected one of {', '.join(sorted(allowed))}",
                item=item,
            )
        if status != Item.Status.OPEN:
            raise ItemClosed(f"this picture is already {status}; your answer was not counted", item=item)
        if already:
            raise AlreadyVoted("you already answered this picture", item=item)

        now = at or timezone.now()
        if counted:  # a flagged labeler's vote is kept (the flag marks it) and counts for nothing
            _apply(item, label, +1)
        outcome = None
        if not item.is_gold and counted:  # gold items measure people and never close
            outcome = quality.outcome_after_vote(
                item=item, campaign=item.campaign, user_id=user.pk, label=label, gold=(gold_correct, gold_answered)
            )
            if outcome.state == DECIDED:
                item.status, item.label, item.decided_at = Item.Status.DECIDED, outcome.label, now
            elif outcome.state == CONFLICT:
                item.status = Item.Status.CONFLICT
        closing = item.status != Item.Status.OPEN
        params.update(
            label=label,
            ms=ms_to_answer,
            now=datetime_value(now),
            counts=json.dumps(item.counts),
            cant_tell=item.cant_tell,
            vote_count=item.vote_count,
            top_count=item.top_count,
            status=item.status,
            label_out=item.label,
            decided_at=datetime_value(item.decided_at) if closing and item.decided_at else None,
        )
        for sql in _write_sql(closing=closing):
            cursor.execute(sql, params)
        written = cursor.fetchone()
        if written is not None and not is_postgres():
            cursor.execute(_TALLY.format(counts=json_param("counts")) + " WHERE id = %(item)s", params)
            if closing:
                cursor.execute(_RELEASE, params)
    if written is None:
        # The insert met a vote committed after our first statement's snapshot: the same UUID (a replay
        # racing itself) or this user's other live vote on the item. Nothing was written.
        replay = _replay_lookup(client_uuid=client_uuid, user=user)
        if replay is not None:
            return replay
        raise AlreadyVoted("you already answered this picture", item=item)
    if outcome is not None and outcome.state == DECIDED:
        ground_truth_record(
            # Only the key is needed to point at the picture; loading the Image row would cost a query.
            image=Image(pk=image_id),
            attribute=attribute,
            value=outcome.label,
            source=GroundTruth.Source.CONSENSUS,
            reference=item_reference(item),
            votes=outcome.total,
            margin=outcome.margin,
            at=now,
        )
    vote = Vote(
        id=written[0],
        item=item,
        user_id=user.pk,
        label=label,
        client_uuid=client_uuid,
        ms_to_answer=ms_to_answer,
        created_at=now,
        undone_at=None,
    )
    vote._state.adding = False
    return VoteResult(vote=vote, created=True, item=item)


def _vote_lookup(ref: int | str | uuid.UUID) -> dict:
    if isinstance(ref, uuid.UUID):
        return {"client_uuid": ref}
    text = str(ref)
    if text.isdigit():
        return {"pk": int(text)}
    try:
        return {"client_uuid": uuid.UUID(text)}
    except ValueError:
        raise LabelingError("a vote is named by its id or its client_uuid") from None


@transaction.atomic
def vote_undo(*, user: AbstractBaseUser, vote_ref: int | str | uuid.UUID) -> Vote:
    """Take back the user's own last vote while its item is still open. Undoing twice is harmless.

    ``vote_ref`` is the vote's id or its client UUID (an offline client may never have seen the id).
    Raises ItemNotFound (no such vote of this user), UndoRefused.
    """
    lookup = _vote_lookup(vote_ref)
    vote = Vote.objects.filter(user=user, **lookup).first()
    if vote is None:
        raise ItemNotFound("no such vote of yours")
    item = Item.objects.select_for_update(no_key=True, of=("self",)).get(pk=vote.item_id)
    vote.refresh_from_db()
    if vote.undone_at is not None:
        return vote
    if item.status != Item.Status.OPEN:
        raise UndoRefused(f"this picture is already {item.status}; the vote stays", item=item, vote=vote)
    last_id = Vote.objects.live().filter(user=user).order_by("-id").values_list("id", flat=True).first()
    if last_id != vote.pk:
        raise UndoRefused("only your last vote can be undone", item=item, vote=vote)
    vote.undone_at = timezone.now()
    vote.save(update_fields=["undone_at"])
    if quality.voter_counts(user_id=user.pk):  # a flagged labeler's vote was never in the tally
        _apply(item, vote.label, -1)
        item.save(update_fields=["counts", "cant_tell", "vote_count", "top_count"])
    return vote


@transaction.atomic
def item_adjudicate(*, item_id: int, label: str, user: AbstractBaseUser) -> Item:
    """Settle a conflict: set the final label and record it as ground truth (source adjudication)."""
    item = (
        Item.objects.select_for_update(no_key=True, of=("self",))
        .select_related("campaign", "image")
        .filter(pk=item_id)
        .first()
    )
    if item is None:
        raise ItemNotFound(f"no item {item_id}")
    if label not in item.campaign.choices:
        raise UnknownLabel(f"{label!r} is not an answer to this campaign", item=item)
    if item.status != Item.Status.CONFLICT:
        raise ItemClosed(f"this picture is {item.status}, not a conflict", item=item)
    now = timezone.now()
    ranked = [*sorted(item.counts.values(), reverse=True), 0, 0]
    item.status, item.label, item.decided_at = Item.Status.ADJUDICATED, label, now
    item.save(update_fields=["status", "label", "decided_at"])
    ground_truth_record(
        image=item.image,
        attribute=item.campaign.attribute,
        value=label,
        source=GroundTruth.Source.ADJUDICATION,
        reference=item_reference(item),
        votes=item.vote_count,
        margin=ranked[0] - ranked[1],
        user=user,
        at=now,
    )
    return item
