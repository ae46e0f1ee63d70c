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
from django.db import connection, transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from classification.models import Image
from labeling.consensus import lease_room, lease_votes
from labeling.models import Campaign, Item, Lease, Vote
from labeling.prepared import hot_cursor

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
    if connection.vendor == "postgresql":
        return _items_next_pg(
            user_id=user.pk, campaign=campaign, count=count, exclude=exclude, now=now, expires_at=expires_at, rng=rng
        )
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
        picked += [i for i in candidates if leased_now.get(i.pk, 0) < lease_room(campaign, top=i.top_count)]
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
        .filter(leased__lt=Greatest(Value(lease_votes(campaign)) - F("top_count"), Value(1)))
        .order_by("-top_count", "-vote_count", "id")
        .select_related("image")
        .select_for_update(skip_locked=True, no_key=True, of=("self",))[:count]
    )


# PostgreSQL path in raw SQL, the same rules as the ORM path below it (which SQLite keeps): the ORM spent
# ~9 ms of Python per call compiling these statements. Three or four statements per call: the caller's held
# leases, gold (only when a gold slot was drawn), one locking pick of real items, and one INSERT that both
# re-counts others' leases on the locked items and writes ours (upserting the held and gold ones).
_VOTED_BY_ME = """NOT EXISTS (SELECT 1 FROM labeling_vote v
                   WHERE v.item_id = i.id AND v.user_id = %(user)s AND v.undone_at IS NULL)"""
_PG_HELD = f"""
SELECT i.id, i.image_id, img.thumbnail
FROM labeling_lease l
JOIN labeling_item i ON i.id = l.item_id
JOIN classification_image img ON img.id = i.image_id
WHERE l.user_id = %(user)s AND l.expires_at > %(now)s AND i.campaign_id = %(campaign)s AND i.status = 'open'
  AND i.id <> ALL(%(exclude)s::bigint[]) AND {_VOTED_BY_ME}
ORDER BY i.id
LIMIT %(count)s
"""
_PG_GOLD = f"""
SELECT i.id, i.image_id, img.thumbnail
FROM labeling_item i JOIN classification_image img ON img.id = i.image_id
WHERE i.campaign_id = %(campaign)s AND i.is_gold AND i.id <> ALL(%(exclude)s::bigint[]) AND {_VOTED_BY_ME}
ORDER BY random()
LIMIT %(count)s
"""
# Others' unexpired leases on an item; the item may be leased to at most (votes_required - top_count) people.
_OTHERS_LEASES = """(SELECT count(*) FROM labeling_lease l
                      WHERE l.item_id = {item} AND l.expires_at > %(now)s AND l.user_id <> %(user)s)"""
_PG_LOCK = f"""
SELECT i.id, i.image_id, img.thumbnail, GREATEST(%(required)s - i.top_count, 1)
FROM labeling_item i JOIN classification_image img ON img.id = i.image_id
WHERE i.campaign_id = %(campaign)s AND NOT i.is_gold AND i.status = 'open'
  AND i.id <> ALL(%(exclude)s::bigint[]) AND {_VOTED_BY_ME}
  AND {_OTHERS_LEASES.format(item="i.id")} < GREATEST(%(required)s - i.top_count, 1)
ORDER BY i.top_count DESC, i.vote_count DESC, i.id
LIMIT %(count)s
FOR NO KEY UPDATE OF i SKIP LOCKED
"""
# A competitor that leased one of the locked items committed before we got its row lock; this statement's
# snapshot is newer than our locks, so it sees that lease (READ COMMITTED). room NULL: held or gold, no cap.
_PG_LEASE = f"""
INSERT INTO labeling_lease (item_id, user_id, expires_at, created_at)
SELECT c.id, %(user)s, %(expires)s, %(now)s
FROM unnest(%(ids)s::bigint[], %(rooms)s::int[]) AS c(id, room)
WHERE c.room IS NULL OR {_OTHERS_LEASES.format(item="c.id")} < c.room
ON CONFLICT (item_id, user_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
RETURNING item_id
"""


def _partial_item(item_id: int, image_id: int, thumbnail: str) -> Item:
    """An Item with only its picture loaded (other columns load lazily, as with ``only()``)."""
    item = Item.from_db(connection.alias, ["id", "image_id"], [item_id, image_id])
    item.image = Image.from_db(connection.alias, ["id", "thumbnail"], [image_id, thumbnail])
    return item


def _items_next_pg(
    *, user_id: int, campaign: Campaign, count: int, exclude: set[int], now: datetime, expires_at: datetime, rng
) -> list[Assignment]:
    params = {"user": user_id, "campaign": campaign.pk, "now": now, "expires": expires_at}
    with hot_cursor() as cursor:
        cursor.execute(_PG_HELD, {**params, "exclude": list(exclude), "count": count})
        held = cursor.fetchall()
        taken = exclude | {row[0] for row in held}
        wanted = count - len(held)
        n_gold = gold_slots(count=wanted, gold_rate=campaign.gold_rate, rng=rng)
        gold = []
        if n_gold:
            cursor.execute(_PG_GOLD, {**params, "exclude": list(taken), "count": n_gold})
            gold = cursor.fetchall()
        # The first round's INSERT also refreshes the held leases and writes the gold ones.
        pending = [(row[0], None) for row in held + gold]
        rows = {row[0]: row for row in held + gold}
        real: list[int] = []
        tried = set(taken)
        for _ in range(ROUNDS):
            want = wanted - len(gold) - len(real)
            candidates = []
            if want > 0:
                cursor.execute(
                    _PG_LOCK,
                    {**params, "exclude": list(tried), "count": want, "required": lease_votes(campaign)},
                )
                candidates = cursor.fetchall()
            if not candidates and not pending:
                break
            tried.update(row[0] for row in candidates)
            rows.update((row[0], row) for row in candidates)
            pending += [(row[0], row[3]) for row in candidates]
            cursor.execute(
                _PG_LEASE,
                {**params, "ids": [pk for pk, _ in pending], "rooms": [room for _, room in pending]},
            )
            leased = {row[0] for row in cursor.fetchall()}
            real += [row[0] for row in candidates if row[0] in leased]
            pending = []
            if not candidates:
                break
    fresh = real[: max(wanted - len(gold), 0)]
    for row in gold:  # at random places, so gold cannot be told apart by position
        fresh.insert(rng.randint(0, len(fresh)), row[0])
    return [Assignment(item=_partial_item(*rows[pk][:3]), expires_at=expires_at) for pk in [r[0] for r in held] + fresh]


def leases_expired_delete(*, now: datetime | None = None) -> int:
    """Drop expired leases (they are already ignored by assignment; this keeps the table small)."""
    deleted, _ = Lease.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted


def lease_release(*, user: AbstractBaseUser, item_id: int) -> bool:
    """Give back ``user``'s lease on an item (a skip), so the item can go to someone else now rather than
    when the lease expires. Idempotent; answers whether a lease was dropped."""
    deleted, _ = Lease.objects.filter(item_id=item_id, user=user).delete()
    return deleted > 0
