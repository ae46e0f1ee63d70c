"""Careful reads of the labeling app: campaign progress, labeler quality, conflicts, the votes export.

Each costs a fixed number of queries whatever the number of campaigns, items or labelers.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Avg, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, TruncWeek
from django.utils import timezone

from labeling.models import CANT_TELL, Campaign, Item, Vote

CLOSED = (Item.Status.DECIDED, Item.Status.ADJUDICATED)


def campaigns_with_progress(*, active_only: bool = True) -> QuerySet[Campaign]:
    """Campaigns annotated with counts of real items per status, gold items, and votes per decided item."""
    real = Q(items__is_gold=False)
    rows = Campaign.objects.annotate(
        n_items=Count("items", filter=real),
        n_open=Count("items", filter=real & Q(items__status=Item.Status.OPEN)),
        n_decided=Count("items", filter=real & Q(items__status=Item.Status.DECIDED)),
        n_conflict=Count("items", filter=real & Q(items__status=Item.Status.CONFLICT)),
        n_adjudicated=Count("items", filter=real & Q(items__status=Item.Status.ADJUDICATED)),
        n_gold=Count("items", filter=Q(items__is_gold=True)),
        votes_per_decided=Avg("items__vote_count", filter=real & Q(items__status=Item.Status.DECIDED)),
    )
    if active_only:
        rows = rows.filter(active=True)
    return rows.order_by("-active", "-created_at")


def with_work_left_for(campaigns: QuerySet[Campaign], *, user_id: int) -> QuerySet[Campaign]:
    """Annotate ``n_left_for_me``: open real items this user has not answered (what they could still label)."""
    left = (
        Item.objects.filter(campaign=OuterRef("pk"), is_gold=False, status=Item.Status.OPEN)
        .exclude(Exists(Vote.objects.live().filter(item=OuterRef("pk"), user_id=user_id)))
        .order_by()
        .values("campaign")
        .annotate(n=Count("id"))
        .values("n")
    )
    return campaigns.annotate(n_left_for_me=Coalesce(Subquery(left, output_field=IntegerField()), Value(0)))


def progress_percent(campaign: Campaign) -> int:
    """Share of real items no longer open (annotated campaigns only)."""
    if not campaign.n_items:
        return 0
    return round(100 * (campaign.n_items - campaign.n_open) / campaign.n_items)


def smoothed(correct: int, answered: int) -> float:
    """Laplace-smoothed rate (k+1)/(n+2): a new labeler starts at 0.5, not at 0 or 1 after one answer."""
    return (correct + 1) / (answered + 2)


@dataclass(frozen=True)
class Quality:
    user_id: int
    username: str
    votes: int
    votes_today: int
    gold_answered: int
    gold_correct: int
    compared: int  # votes (not can't tell) on items the crowd or an adjudicator settled
    agreed: int

    @property
    def gold_accuracy(self) -> float:
        return smoothed(self.gold_correct, self.gold_answered)

    @property
    def agreement(self) -> float:
        return smoothed(self.agreed, self.compared)

    @property
    def flagged(self) -> bool:
        """Enough gold answered to judge, and the smoothed gold accuracy is below the threshold."""
        return (
            self.gold_answered >= settings.LABELING_FLAG_MIN_GOLD and self.gold_accuracy < settings.LABELING_FLAG_BELOW
        )


def _start_of_today() -> datetime:
    return timezone.make_aware(datetime.combine(timezone.localdate(), time.min))


def labeler_quality(*, user_ids: list[int] | None = None, campaign: Campaign | None = None) -> list[Quality]:
    """Per labeler: votes (total, today), gold answers and correct ones ("can't tell" on gold counts as wrong:
    gold pictures are chosen to be clear), and agreement with settled items. One query; most votes first."""
    votes = Vote.objects.live()
    if user_ids is not None:
        votes = votes.filter(user_id__in=user_ids)
    if campaign is not None:
        votes = votes.filter(item__campaign=campaign)
    gold = Q(item__is_gold=True)
    settled = Q(item__is_gold=False, item__status__in=CLOSED) & ~Q(label=CANT_TELL)
    rows = (
        votes.order_by()
        .values("user_id", "user__username")
        .annotate(
            votes=Count("id"),
            votes_today=Count("id", filter=Q(created_at__gte=_start_of_today())),
            gold_answered=Count("id", filter=gold),
            gold_correct=Count("id", filter=gold & Q(label=F("item__gold_label"))),
            compared=Count("id", filter=settled),
            agreed=Count("id", filter=settled & Q(label=F("item__label"))),
        )
        .order_by("-votes", "user__username")
    )
    return [
        Quality(
            user_id=r["user_id"],
            username=r["user__username"],
            votes=r["votes"],
            votes_today=r["votes_today"],
            gold_answered=r["gold_answered"],
            gold_correct=r["gold_correct"],
            compared=r["compared"],
            agreed=r["agreed"],
        )
        for r in rows
    ]


def conflicts_pending(*, campaign: Campaign | None = None) -> QuerySet[Item]:
    """Conflicts waiting for an adjudicator, oldest first, with what a page shows of them."""
    rows = Item.objects.filter(status=Item.Status.CONFLICT, is_gold=False).select_related("campaign", "image")
    if campaign is not None:
        rows = rows.filter(campaign=campaign)
    return rows.order_by("created_at", "id")


def votes_for_export(*, campaign: Campaign) -> Iterator[tuple[int, int, str]]:
    """(task, worker, label) for every live answer on the campaign's real items; can't tell is left out
    because aggregation libraries treat every label as a class."""
    rows = (
        Vote.objects.live()
        .filter(item__campaign=campaign, item__is_gold=False)
        .exclude(label=CANT_TELL)
        .order_by("item_id", "id")
        .values_list("item_id", "user_id", "label")
    )
    yield from rows.iterator(chunk_size=2000)


@dataclass(frozen=True)
class WeekQuality:
    week: date  # the Monday the week starts on
    gold_answered: int
    gold_correct: int
    compared: int
    agreed: int

    @property
    def gold_accuracy(self) -> float | None:
        return smoothed(self.gold_correct, self.gold_answered) if self.gold_answered else None

    @property
    def agreement(self) -> float | None:
        return smoothed(self.agreed, self.compared) if self.compared else None


def quality_by_week(*, user_id: int | None = None, weeks: int = 12) -> list[WeekQuality]:
    """Gold accuracy and agreement per week (of the vote) over the last ``weeks`` weeks, for one labeler or
    everyone; weeks with no vote are left out. One query."""
    since = timezone.now() - timedelta(weeks=weeks)
    votes = Vote.objects.live().filter(created_at__gte=since)
    if user_id is not None:
        votes = votes.filter(user_id=user_id)
    gold = Q(item__is_gold=True)
    settled = Q(item__is_gold=False, item__status__in=CLOSED) & ~Q(label=CANT_TELL)
    rows = (
        votes.annotate(week=TruncWeek("created_at"))
        .order_by()
        .values("week")
        .annotate(
            gold_answered=Count("id", filter=gold),
            gold_correct=Count("id", filter=gold & Q(label=F("item__gold_label"))),
            compared=Count("id", filter=settled),
            agreed=Count("id", filter=settled & Q(label=F("item__label"))),
        )
        .order_by("week")
    )
    return [
        WeekQuality(
            week=r["week"].date() if isinstance(r["week"], datetime) else r["week"],
            gold_answered=r["gold_answered"],
            gold_correct=r["gold_correct"],
            compared=r["compared"],
            agreed=r["agreed"],
        )
        for r in rows
    ]


def image_visible(*, user, image_id: int) -> bool:
    """Whether ``user`` may see the picture: staff always; labelers when it is an item of an active campaign."""
    from core.roles import Role, has_role, is_staff_reviewer

    if is_staff_reviewer(user):
        return True
    return has_role(user, Role.LABELER) and Item.objects.filter(image_id=image_id, campaign__active=True).exists()
