"""Labeler quality on the server: whose votes count, with what accuracy, and what a flag changes.

- The vote service asks ``outcome_after_vote`` where an item stands after a counted vote: the campaign's rule
  (``labeling.consensus.Rule``, the code bench/consensus.py runs) fed with each voter's gold accuracy.
- A flagged labeler's votes are kept (the flag marks them) and count for nothing. Flagging or unflagging
  re-tallies every item they voted on from the votes table, replaying the rule vote by vote: an item whose
  decision depended on them reopens (its consensus ground truth is withdrawn), an item the re-tally closes
  loses its leases (as when a vote closes it), and a ``FlagEvent`` records what changed for the admin.
- ``standings_refresh`` (a periodic task) recounts gold answers and flags, by gold, labelers whose smoothed
  gold accuracy is below LABELING_FLAG_BELOW after LABELING_FLAG_MIN_GOLD answers.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from classification.models import GroundTruth
from classification.services import ground_truth_record, ground_truth_withdraw
from labeling.consensus import DECIDED, Outcome, Rule, voter_accuracy
from labeling.models import CANT_TELL, Campaign, FlagEvent, Item, LabelerStanding, Lease, Vote
from labeling.selectors import labeler_quality, smoothed

NOT_FLAGGED = Q(user__labeling_standing__isnull=True) | Q(user__labeling_standing__flagged_at__isnull=True)


def _accuracy(correct: int | None, answered: int | None) -> float:
    return voter_accuracy(gold_correct=correct or 0, gold_answered=answered or 0)


def voter_counts(*, user_id: int) -> bool:
    """Whether this labeler's votes count (they are not flagged)."""
    return not LabelerStanding.objects.filter(pk=user_id, flagged_at__isnull=False).exists()


def outcome_after_vote(
    *, item: Item, campaign: Campaign, user_id: int, label: str, gold: tuple[int | None, int | None]
) -> Outcome:
    """Where a real item stands once ``user_id``'s counted vote (``label``) is in its tally (``item.counts``,
    ``item.cant_tell``); ``gold`` is the voter's (gold_correct, gold_answered), None when they have no standing
    yet (the vote service reads it with the item's lock).

    The count rule reads the tally alone (no query); the weighted rule also reads the gold accuracy of every
    other counted voter on the item (one query). The new vote need not be in the votes table yet.
    """
    rule = Rule.of(campaign)
    if not rule.weighted:
        return rule.outcome(counts=item.counts, cant_tell=item.cant_tell)
    others = (
        Vote.objects.live()
        .filter(NOT_FLAGGED, item_id=item.pk)
        .exclude(user_id=user_id)
        .exclude(label=CANT_TELL)
        .values_list("label", "user__labeling_standing__gold_correct", "user__labeling_standing__gold_answered")
    )
    votes = [(given, _accuracy(c, a)) for given, c, a in others]
    if label != CANT_TELL:
        votes.append((label, _accuracy(*gold)))
    return rule.outcome(counts=item.counts, cant_tell=item.cant_tell, votes=votes)


@dataclass(frozen=True)
class Change:
    item: int
    campaign: int
    was: str
    now: str

    def as_dict(self) -> dict:
        return {"item": self.item, "campaign": self.campaign, "from": self.was, "to": self.now}


def _state(status: str, label: str) -> str:
    return f"{status} {label}".strip()


def item_retally(*, item_id: int, at: datetime | None = None) -> Change | None:
    """Recount one item from its live votes of labelers who are not flagged, replaying the campaign's rule in
    the order the votes arrived; reopen, decide or close it to match. Adjudicated items keep their human
    decision (only their tally changes); gold items stay open. Answers the change of state, if any."""
    now = at or timezone.now()
    with transaction.atomic():
        item = (
            Item.objects.select_for_update(no_key=True, of=("self",))
            .select_related("campaign")
            .filter(pk=item_id)
            .first()
        )
        if item is None:
            return None
        rows = (
            Vote.objects.live()
            .filter(NOT_FLAGGED, item_id=item_id)
            .order_by("id")
            .values_list("label", "user__labeling_standing__gold_correct", "user__labeling_standing__gold_answered")
        )
        votes = [(label, _accuracy(c, a)) for label, c, a in rows]
        counts: dict[str, int] = {}
        for label, _ in votes:
            if label != CANT_TELL:
                counts[label] = counts.get(label, 0) + 1
        item.counts = counts
        item.cant_tell = sum(1 for label, _ in votes if label == CANT_TELL)
        item.vote_count = len(votes)
        item.top_count = max(counts.values(), default=0)
        fields = ["counts", "cant_tell", "vote_count", "top_count"]
        was = _state(item.status, item.label)
        if item.is_gold or item.status == Item.Status.ADJUDICATED:
            item.save(update_fields=fields)
            return None
        outcome = Rule.of(item.campaign).replay(votes)
        status = {DECIDED: Item.Status.DECIDED, "conflict": Item.Status.CONFLICT}.get(outcome.state, Item.Status.OPEN)
        if status == item.status and outcome.label == item.label:
            item.save(update_fields=fields)
            return None
        reference = f"labeling.item:{item.pk}"  # as labeling.services.item_reference writes it
        if item.status == Item.Status.DECIDED:
            ground_truth_withdraw(reference=reference, source=GroundTruth.Source.CONSENSUS)
        item.status, item.label = status, outcome.label
        item.decided_at = now if status == Item.Status.DECIDED else None
        if status == Item.Status.DECIDED:
            ground_truth_record(
                image=item.image,
                attribute=item.campaign.attribute,
                value=outcome.label,
                source=GroundTruth.Source.CONSENSUS,
                reference=reference,
                votes=outcome.total,
                margin=outcome.margin,
                at=now,
            )
        item.save(update_fields=[*fields, "status", "label", "decided_at"])
        if status != Item.Status.OPEN:  # closed by the re-tally: nobody may still answer it (as a closing vote)
            Lease.objects.filter(item_id=item.pk).delete()
        return Change(item=item.pk, campaign=item.campaign_id, was=was, now=_state(item.status, item.label))


def _retally_voted(*, user_id: int, at: datetime) -> tuple[int, list[Change]]:
    item_ids = list(
        Vote.objects.live()
        .filter(user_id=user_id, item__is_gold=False)
        .order_by("item_id")
        .values_list("item_id", flat=True)
    )
    changes = [c for c in (item_retally(item_id=pk, at=at) for pk in item_ids) if c is not None]
    return len(item_ids), changes


def labeler_flag(
    *, user: AbstractBaseUser, source: str, by: AbstractBaseUser | None = None, reason: str = ""
) -> FlagEvent | None:
    """Flag a labeler: from now on their votes are kept but not counted, and every item they voted on is
    re-tallied without them. Answers the event, or None when they were already flagged."""
    now = timezone.now()
    with transaction.atomic():
        standing, _ = LabelerStanding.objects.select_for_update().get_or_create(user_id=user.pk)
        if standing.flagged_at is not None:
            return None
        standing.flagged_at, standing.flag_source, standing.flag_reason = now, source, reason[:300]
        standing.save(update_fields=["flagged_at", "flag_source", "flag_reason"])
    # Committed first: a vote that starts from here on sees the flag and is not counted.
    n_votes, changes = _retally_voted(user_id=user.pk, at=now)
    return FlagEvent.objects.create(
        user_id=user.pk,
        action=FlagEvent.Action.FLAG,
        source=source,
        by=by if by is not None and by.is_authenticated else None,
        reason=reason[:300],
        at=now,
        votes=n_votes,
        changes=[c.as_dict() for c in changes],
    )


def labeler_unflag(*, user: AbstractBaseUser, by: AbstractBaseUser, reason: str = "") -> FlagEvent | None:
    """Count a labeler's votes again (an admin's call): every item they voted on is re-tallied with them.
    Gold flags them again only after LABELING_FLAG_MIN_GOLD further gold answers. None if not flagged."""
    now = timezone.now()
    with transaction.atomic():
        standing = LabelerStanding.objects.select_for_update().filter(pk=user.pk).first()
        if standing is None or standing.flagged_at is None:
            return None
        standing.flagged_at, standing.flag_source, standing.flag_reason = None, "", ""
        standing.cleared_gold = standing.gold_answered
        standing.save(update_fields=["flagged_at", "flag_source", "flag_reason", "cleared_gold"])
    n_votes, changes = _retally_voted(user_id=user.pk, at=now)
    return FlagEvent.objects.create(
        user_id=user.pk,
        action=FlagEvent.Action.UNFLAG,
        source=LabelerStanding.Source.ADMIN,
        by=by,
        reason=reason[:300],
        at=now,
        votes=n_votes,
        changes=[c.as_dict() for c in changes],
    )


def _below_bar(*, correct: int, answered: int) -> bool:
    return answered >= settings.LABELING_FLAG_MIN_GOLD and smoothed(correct, answered) < settings.LABELING_FLAG_BELOW


def standings_refresh(*, window: timedelta | None = None, now: datetime | None = None) -> list[FlagEvent]:
    """Recount the gold answers of labelers who answered gold within ``window`` (everyone when None), store
    them (the weighted rule reads them), and flag by gold those below the bar. Answers the new flags."""
    from django.contrib.auth import get_user_model

    now = now or timezone.now()
    user_ids = None
    if window is not None:
        user_ids = list(
            Vote.objects.filter(item__is_gold=True, created_at__gte=now - window)
            .order_by()
            .values_list("user_id", flat=True)
            .distinct()
        )
        if not user_ids:
            return []
    rows = labeler_quality(user_ids=user_ids)
    existing = LabelerStanding.objects.in_bulk([q.user_id for q in rows])
    to_flag = []
    for q in rows:
        standing = existing.get(q.user_id) or LabelerStanding(user_id=q.user_id)
        standing.gold_answered, standing.gold_correct, standing.refreshed_at = q.gold_answered, q.gold_correct, now
        existing[q.user_id] = standing
        fresh_evidence = standing.cleared_gold == 0 or q.gold_answered >= (
            standing.cleared_gold + settings.LABELING_FLAG_MIN_GOLD
        )
        if (
            standing.flagged_at is None
            and fresh_evidence
            and _below_bar(correct=q.gold_correct, answered=q.gold_answered)
        ):
            to_flag.append(q)
    LabelerStanding.objects.bulk_create(
        list(existing.values()),
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["gold_answered", "gold_correct", "refreshed_at"],
    )
    users = get_user_model().objects.in_bulk([q.user_id for q in to_flag])
    events = []
    for q in to_flag:
        event = labeler_flag(
            user=users[q.user_id],
            source=LabelerStanding.Source.GOLD,
            reason=f"gold {q.gold_correct}/{q.gold_answered} ({q.gold_accuracy:.0%} smoothed)",
        )
        if event is not None:
            events.append(event)
    return events
