"""Which items a labeler gets next — the hardest query of the app, kept apart and tested on its own.

Rules: open items the user has not voted on; never leased to more people than the item could still use
(the fewest votes that could decide it); closest to a decision first; gold interleaved at the campaign's
gold rate; leases expire (LABELING_LEASE_SECONDS). On PostgreSQL concurrent callers skip each other's
candidate rows (``FOR NO KEY UPDATE SKIP LOCKED``: it does not block inserts that reference the item)
and re-count leases after locking; on SQLite the IMMEDIATE transaction mode serialises the whole call.
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.models import Campaign, Item, Lease, Vote

MAX_BATCH = 20
# Rounds of lock-then-recount before settling for fewer items than asked.
ROUNDS = 3


@dataclass(frozen=True)
class Assignment:
    item: Item
    expires_at: datetime


def _lease_seconds() -> int:
    return getattr(settings, "LABELING_LEASE_SECONDS", 600)


def gold_slots(*, count: int, gold_rate: float, rng: random.Random) -> int:
    """How many of ``count`` slots are gold: each slot independently with probability ``gold_rate``."""
    return sum(1 for _ in range(count) if rng.random() < gold_rate)


@transaction.atomic
def items_next(
    *,
    user: AbstractBaseUser,
    campaign: Campaign,
    count: int,
    exclude_ids: frozenset[int] | set[int] = frozenset(),
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> list[Assignment]:
    """Lease up to ``count`` items of ``campaign`` to ``user`` and return them with their lease expiry.

    The user's own unexpired leases come back first (a reload gets the same pictures); ``exclude_ids`` are
    items the caller already holds or skipped.
    """
    now = now or timezone.now()
    rng = rng or random.Random()
    count = max(0, min(count, MAX_BATCH))
    if count == 0 or not campaign.active:
        return []
    expires_at = now + timedelta(seconds=_lease_seconds())
    exclude = set(exclude_ids)
    voted = Vote.objects.live().filter(item=OuterRef("pk"), user=user)

    # Read from the user's few leases, not from the campaign's many items.
    held = list(
        Lease.objects.filter(user=user, expires_at__gt=now, item__campaign=campaign, item__status=Item.Status.OPEN)
        .exclude(item_id__in=exclude)
        .exclude(Exists(Vote.objects.live().filter(item=OuterRef("item_id"), user=user)))
        .order_by("item_id")
        .values_list("item_id", "item__is_gold")[:count]
    )
    taken = exclude | {pk for pk, _ in held}
    wanted = count - len(held)

    n_gold = gold_slots(count=wanted, gold_rate=campaign.gold_rate, rng=rng)
    gold_ids = list(
        Item.objects.filter(campaign=campaign, is_gold=True)
        .exclude(pk__in=taken)
        .exclude(Exists(voted))
        .order_by("?")
        .values_list("id", flat=True)[:n_gold]
    )
    real = _lease_real(user=user, campaign=campaign, count=wanted - len(gold_ids), taken=taken, voted=voted, now=now)
    fresh = [item.pk for item in real]
    for gold_id in gold_ids:  # at random places, so gold cannot be told apart by position
        fresh.insert(rng.randint(0, len(fresh)), gold_id)

    ordered = [pk for pk, _ in held] + fresh
    if not ordered:
        return []
    Lease.objects.bulk_create(
        [Lease(item_id=pk, user=user, expires_at=expires_at, created_at=now) for pk in ordered],
        update_conflicts=True,
        unique_fields=["item", "user"],
        update_fields=["expires_at"],
    )
    items = {item.pk: item for item in real}
    others = [pk for pk in ordered if pk not in items]
    if others:  # held and gold items; the real ones came with their pictures from the locking query
        items.update(Item.objects.select_related("image").in_bulk(others))
    return [Assignment(item=items[pk], expires_at=expires_at) for pk in ordered]


def _lease_real(*, user, campaign: Campaign, count: int, taken: set[int], voted, now: datetime) -> list[Item]:
    """Lock and pick up to ``count`` real open items that still have room for another lease.

    Locks only as many rows as still wanted (locking spares would make concurrent callers skip them for
    nothing); a row dropped by the re-count is replaced in a further round.
    """
    picked: list[Item] = []
    tried = set(taken)
    for _ in range(ROUNDS):
        wanted = count - len(picked)
        if wanted <= 0:
            break
        candidates = _lock_candidates(user=user, campaign=campaign, count=wanted, tried=tried, voted=voted, now=now)
        if not candidates:
            break
        tried.update(item.pk for item in candidates)
        # A competitor that leased one of these committed before we got its row lock; this new statement
        # sees its lease (READ COMMITTED), which the candidate query's older snapshot may not have.
        leased_now = dict(
            Lease.objects.filter(item_id__in=[item.pk for item in candidates], expires_at__gt=now)
            .exclude(user=user)
            .order_by()
            .values("item_id")
            .annotate(n=Count("id"))
            .values_list("item_id", "n")
        )
        picked += [i for i in candidates if leased_now.get(i.pk, 0) < campaign.votes_required - i.top_count]
    return picked[:count]


def _lock_candidates(*, user, campaign: Campaign, count: int, tried: set[int], voted, now: datetime):
    others_leases = (
        Lease.objects.filter(item=OuterRef("pk"), expires_at__gt=now)
        .exclude(user=user)
        .order_by()
        .values("item")
        .annotate(n=Count("id"))
        .values("n")
    )
    return list(
        Item.objects.filter(campaign=campaign, is_gold=False, status=Item.Status.OPEN)
        .exclude(pk__in=tried)
        .exclude(Exists(voted))
        .annotate(leased=Coalesce(Subquery(others_leases, output_field=IntegerField()), Value(0)))
        .filter(leased__lt=campaign.votes_required - F("top_count"))
        .order_by("-top_count", "-vote_count", "id")
        .select_related("image")
        .select_for_update(skip_locked=True, no_key=True, of=("self",))[:count]
    )


def leases_expired_delete(*, now: datetime | None = None) -> int:
    """Drop expired leases (they are already ignored by assignment; this keeps the table small)."""
    deleted, _ = Lease.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
