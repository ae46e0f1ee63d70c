"""Writes of the labeling app: recording and undoing votes, adjudicating conflicts.

Every write that touches an item's tally locks the item's row first, so concurrent votes on one item are
applied one at a time and no vote is accepted past a decision.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from classification.models import GroundTruth
from classification.services import ground_truth_record
from labeling.consensus import CONFLICT, DECIDED, consensus
from labeling.models import CANT_TELL, Campaign, Item, Lease, Vote


class LabelingError(Exception):
    """A refused write; ``code`` and ``status`` map it to the API's error shape."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, item: Item | None = None, vote: Vote | None = None):
        super().__init__(message)
        self.message = message
        self.item = item
        self.vote = vote


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


def _allowed_labels(campaign: Campaign) -> set[str]:
    return {*campaign.choices, CANT_TELL}


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

    Raises UnknownLabel, ItemNotFound, ItemClosed (decided/conflict: not counted), AlreadyVoted, UuidReused.
    """
    try:
        with transaction.atomic():
            return _vote_record_locked(
                user=user, item_id=item_id, label=label, client_uuid=client_uuid, ms_to_answer=ms_to_answer, at=at
            )
    except IntegrityError:
        # Lost a race with the same UUID (replayed on another item) or with another vote of this user.
        existing = Vote.objects.select_related("item").filter(client_uuid=client_uuid).first()
        if existing is not None:
            return _replay(existing, user=user)
        item = Item.objects.get(pk=item_id)
        raise AlreadyVoted("you already answered this picture", item=item) from None


def _vote_record_locked(*, user, item_id, label, client_uuid, ms_to_answer, at) -> VoteResult:
    # The user's lease on the item ends with their answer. Dropped before taking the item's row lock, so
    # the lock is held for as few statements as possible (the item's row is what every voter queues on).
    Lease.objects.filter(item_id=item_id, user=user).delete()
    # One statement locks the item and answers both questions: is this a replay, and did this user already
    # answer? If we waited for the lock, PostgreSQL hands back the newest item row but these two answers come
    # from the statement's snapshot; a vote committed meanwhile then trips a unique constraint on insert,
    # and vote_record turns that IntegrityError into the replay or the refusal.
    item = (
        Item.objects.select_for_update(no_key=True, of=("self",))
        .select_related("campaign")
        .annotate(
            replay_id=Subquery(Vote.objects.filter(client_uuid=client_uuid).values("id")[:1]),
            already=Exists(Vote.objects.live().filter(item=OuterRef("pk"), user=user)),
        )
        .filter(pk=item_id)
        .first()
    )
    if item is None:
        # A replay whose item is gone still names its vote; anything else is a bad reference.
        existing = Vote.objects.select_related("item").filter(client_uuid=client_uuid).first()
        if existing is not None:
            return _replay(existing, user=user)
        raise ItemNotFound(f"no item {item_id}")
    campaign = item.campaign
    if item.replay_id is not None:
        return _replay(Vote.objects.select_related("item").get(pk=item.replay_id), user=user)
    if label not in _allowed_labels(campaign):
        raise UnknownLabel(
            f"{label!r} is not an answer to this campaign; expected one of "
            f"{', '.join(sorted(_allowed_labels(campaign)))}",
            item=item,
        )
    if item.status != Item.Status.OPEN:
        raise ItemClosed(f"this picture is already {item.status}; your answer was not counted", item=item)
    if item.already:
        raise AlreadyVoted("you already answered this picture", item=item)

    now = at or timezone.now()
    vote = Vote.objects.create(
        item=item, user=user, label=label, client_uuid=client_uuid, ms_to_answer=ms_to_answer, created_at=now
    )
    _apply(item, label, +1)
    fields = ["counts", "cant_tell", "vote_count", "top_count"]
    if not item.is_gold:  # gold items measure people and never close
        outcome = consensus(
            counts=item.counts,
            cant_tell=item.cant_tell,
            votes_required=campaign.votes_required,
            max_votes=campaign.max_votes,
        )
        if outcome.state == DECIDED:
            item.status, item.label, item.decided_at = Item.Status.DECIDED, outcome.label, now
            fields += ["status", "label", "decided_at"]
            ground_truth_record(
                image=item.image,
                attribute=campaign.attribute,
                value=outcome.label,
                source=GroundTruth.Source.CONSENSUS,
                reference=item_reference(item),
                votes=outcome.total,
                margin=outcome.margin,
                at=now,
            )
        elif outcome.state == CONFLICT:
            item.status = Item.Status.CONFLICT
            fields.append("status")
    item.save(update_fields=fields)
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
