"""Which items a labeler gets next — the hardest query of the app, kept apart and tested on its own.

Rules: open items the user has not voted on; never leased to more people than can still answer before the
item closes either way (``consensus.lease_capacity``, per the campaign's rule); closest to a decision first;
gold interleaved at the campaign's gold rate; leases expire (LABELING_LEASE_SECONDS). On PostgreSQL
concurrent callers skip each other's candidate rows (``FOR NO KEY UPDATE SKIP LOCKED``: it does not block
inserts that reference the item) and re-count leases after locking; on SQLite the IMMEDIATE transaction
mode (and a lock per server process, labeling.prepared.write_transaction) serialises the whole call.
"""

import functools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from classification.models import Image
from labeling.consensus import WEIGHTED, lease_capacity_sql
from labeling.models import Campaign, Item, Lease
from labeling.prepared import (
    datetime_value,
    hot_cursor,
    ids,
    lock_rows,
    not_in_ids,
    pairs_table,
    rooms,
    write_transaction,
)

MAX_BATCH = 20
# The picks of one call, in order, until it has what it asked for (see _SCOPES); a pick whose items a
# competitor leased meanwhile is followed by the next one.
SCOPES = ("window", "fresh", "window", "all")


@dataclass(frozen=True)
class Assignment:
    item: Item
    expires_at: datetime


def _lease_seconds() -> int:
    return getattr(settings, "LABELING_LEASE_SECONDS", 600)


def gold_slots(*, count: int, gold_rate: float, rng: random.Random) -> int:
    """How many of ``count`` slots are gold: each slot independently with probability ``gold_rate``."""
    return sum(1 for _ in range(count) if rng.random() < gold_rate)


def items_next(
    *,
    user: AbstractBaseUser,
    campaign: Campaign,
    count: int,
    exclude_ids: frozenset[int] | set[int] = frozenset(),
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> list[Assignment]:
    """Lease up to ``count`` items of ``campaign`` to ``user`` and return them with their lease expiry
    (nothing when the campaign is not active): ``campaign_items_next`` for a campaign already at hand."""
    _, assigned = campaign_items_next(
        user=user, campaign_id=campaign.pk, count=count, exclude_ids=exclude_ids, now=now, rng=rng
    )
    return assigned


def campaign_items_next(
    *,
    user: AbstractBaseUser,
    campaign_id: int,
    count: int,
    exclude_ids: frozenset[int] | set[int] = frozenset(),
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> tuple[Campaign | None, list[Assignment]]:
    """The active campaign ``campaign_id`` (None: there is none) and up to ``count`` of its items leased to
    ``user``, with their lease expiry.

    The user's own unexpired leases come back first (a reload gets the same pictures); ``exclude_ids`` are
    items the caller already holds or skipped. The campaign comes with those held leases, in one statement.
    """
    now = now or timezone.now()
    rng = rng or random.Random()
    count = max(0, min(count, MAX_BATCH))
    params = {"user": user.pk, "campaign": campaign_id, "now": datetime_value(now)}
    with write_transaction(), hot_cursor() as cursor:
        cursor.execute(_sql("campaign_held"), {**params, "exclude": ids(exclude_ids), "count": count})
        rows = cursor.fetchall()
        campaign = next((_campaign(row[1 : 1 + len(CAMPAIGN_FIELDS)]) for row in rows if row[0] == 0), None)
        if campaign is None or count == 0:
            return campaign, []
        held = sorted(tuple(row[-3:]) for row in rows if row[0] == 1)
        expires_at = now + timedelta(seconds=_lease_seconds())
        params.update(
            expires=datetime_value(expires_at),
            required=campaign.votes_required,
            max_votes=campaign.max_votes,
            min_votes=campaign.min_votes,
        )
        assigned = _items_next(
            cursor, params=params, campaign=campaign, held=held, count=count, exclude=set(exclude_ids), rng=rng
        )
    return campaign, [Assignment(item=_partial_item(*row), expires_at=expires_at) for row in assigned]


# Raw SQL, the same statements on PostgreSQL and SQLite (labeling/prepared.py spells the few differences): the
# ORM spent ~9 ms of Python per call compiling them. Three or four statements per call: the campaign with the
# caller's held leases, gold (only when a gold slot was drawn), one locking pick of real items, and one INSERT
# that both re-counts others' leases on the locked items and writes ours (upserting the held and gold ones).
# SQLite runs the call under its write lock, so its re-count finds what the pick found.
_VOTED_BY_ME = """NOT EXISTS (SELECT 1 FROM labeling_vote v
                   WHERE v.item_id = i.id AND v.user_id = %(user)s AND v.undone_at IS NULL)"""
_HELD = """
SELECT i.id, i.image_id, img.thumbnail
FROM labeling_lease l
JOIN labeling_item i ON i.id = l.item_id
JOIN classification_image img ON img.id = i.image_id
WHERE l.user_id = %(user)s AND l.expires_at > %(now)s AND i.campaign_id = %(campaign)s AND i.status = 'open'
  AND {not_excluded} AND {voted}
ORDER BY i.id
LIMIT %(count)s
"""
# What "next" reads of its campaign (the guidelines and the audit columns load lazily if ever touched).
CAMPAIGN_FIELDS = ["id", "name", "attribute", "votes_required", "max_votes", "gold_rate", "rule", "min_votes",
                   "threshold", "active"]  # fmt: skip
_ACTIVE_CAMPAIGN = f"SELECT {', '.join(CAMPAIGN_FIELDS)} FROM labeling_campaign WHERE id = %(campaign)s AND active"
# The active campaign (a row of kind 0, none when it is not active) and the caller's held leases on it
# (kind 1), in one round trip.
_NULLS = ", ".join(["NULL"] * len(CAMPAIGN_FIELDS))
_CAMPAIGN_HELD = f"""
SELECT 0, {", ".join(f"c.{name}" for name in CAMPAIGN_FIELDS)}, NULL, NULL, NULL
FROM labeling_campaign c WHERE c.id = %(campaign)s AND c.active
UNION ALL
SELECT 1, {_NULLS}, h.id, h.image_id, h.thumbnail FROM ({{held}}) h
"""
_GOLD = """
SELECT i.id, i.image_id, img.thumbnail
FROM labeling_item i JOIN classification_image img ON img.id = i.image_id
WHERE i.campaign_id = %(campaign)s AND i.is_gold = true AND {not_excluded} AND {voted}
ORDER BY random()
LIMIT %(count)s
"""
# Others' unexpired leases on an item; it may be leased to at most lease_capacity people in all.
_OTHERS_LEASES = """(SELECT count(*) FROM labeling_lease l
                      WHERE l.item_id = {item} AND l.expires_at > %(now)s AND l.user_id <> %(user)s)"""
# Per rule: the weighted rule's capacity reads min_votes too (a parameter, like the others).
_COLUMNS = {"top": "i.top_count", "total": "i.vote_count", "votes_required": "%(required)s"}
_CAPACITY = {
    weighted: lease_capacity_sql(**_COLUMNS, max_votes="%(max_votes)s", weighted=weighted, min_votes="%(min_votes)s")
    for weighted in (False, True)
}
_PICK = """
SELECT i.id, i.image_id, img.thumbnail, {capacity}
FROM labeling_item i JOIN classification_image img ON img.id = i.image_id
WHERE i.campaign_id = %(campaign)s AND i.is_gold = false AND i.status = 'open' {scope}
  AND {not_excluded} AND {voted} AND {others} < {capacity}
ORDER BY i.top_count DESC, i.vote_count DESC, i.id
LIMIT %(count)s
{lock}
"""
# "next" stays flat in the caller's history: the items closest to a decision are mostly ones the caller
# already answered (a lone labeler's stay open for ever), and walking past them cost 40 -> 164 ms after 579
# votes. So the pick looks first at the WINDOW in-progress items closest to a decision, then at fresh items
# (no vote yet: nobody answered them, an index range in id order), and only when both fall short (the end of
# a campaign) at every open item. docs/labeling.md shows the plans.
WINDOW = 64
_SCOPES = {
    "window": f"""AND i.vote_count > 0 AND i.id IN (
        SELECT w.id FROM labeling_item w
        WHERE w.campaign_id = %(campaign)s AND w.is_gold = false AND w.status = 'open' AND w.vote_count > 0
        ORDER BY w.top_count DESC, w.vote_count DESC, w.id LIMIT {WINDOW})""",
    "fresh": "AND i.top_count = 0 AND i.vote_count = 0",
    "all": "",
}
# A competitor that leased one of the picked items committed before we got its row lock; this statement's
# snapshot is newer than our locks, so it sees that lease (READ COMMITTED). room NULL: held or gold, no cap.
_LEASE = """
INSERT INTO labeling_lease (item_id, user_id, expires_at, created_at)
SELECT c.id, %(user)s, %(expires)s, %(now)s
FROM {pairs}
WHERE c.room IS NULL OR {others} < c.room
ON CONFLICT (item_id, user_id) DO UPDATE SET expires_at = excluded.expires_at
RETURNING item_id
"""


# A flagged labeler's votes are kept but not counted, so an item with no counted vote may hold one of theirs.
_FRESH_VOTED_BY_ME = f"""(NOT EXISTS (SELECT 1 FROM labeling_labelerstanding s
                                   WHERE s.user_id = %(user)s AND s.flagged_at IS NOT NULL) OR {_VOTED_BY_ME})"""


def _sql(name: str, scope: str = "all", *, weighted: bool = False) -> str:
    """The named statement in this connection's dialect (``scope``: which open items a pick looks at;
    ``weighted``: the campaign's rule is the weighted one, whose lease capacity differs)."""
    return _sql_for(connection.vendor, name, scope, weighted)


@functools.cache
def _sql_for(vendor: str, name: str, scope: str, weighted: bool) -> str:
    # Built once per statement and dialect (``vendor`` keys the cache; the fragments read it from the
    # connection): formatting them on every call cost about 0.1 ms of a "next".
    parts = {
        "scope": _SCOPES[scope],
        "not_excluded": not_in_ids("i.id", "exclude"),
        # An item with no counted vote has none of the caller's unless the caller is flagged: fresh items
        # skip the probe (and its plan) for everyone else; the flag is read once per statement.
        "voted": _FRESH_VOTED_BY_ME if scope == "fresh" else _VOTED_BY_ME,
        "capacity": _CAPACITY[weighted],
        "others": _OTHERS_LEASES.format(item="i.id"),
        "lock": lock_rows("i", skip_locked=True),
    }
    if name == "campaign_held":
        return _CAMPAIGN_HELD.format(held=_HELD.format(**parts))
    if name == "lease":
        return _LEASE.format(pairs=pairs_table("ids", "rooms"), others=_OTHERS_LEASES.format(item="c.id"))
    return {"gold": _GOLD, "pick": _PICK}[name].format(**parts)


def _campaign(values) -> Campaign:
    return Campaign.from_db(connection.alias, CAMPAIGN_FIELDS, [*values[:-1], bool(values[-1])])  # SQLite: 0/1


def campaign_active(*, pk: int) -> Campaign | None:
    """The active campaign ``pk``, or None (one prepared statement)."""
    with hot_cursor() as cursor:
        cursor.execute(_ACTIVE_CAMPAIGN, {"campaign": pk})
        row = cursor.fetchone()
    return None if row is None else _campaign(row)


def _partial_item(item_id: int, image_id: int, thumbnail: str) -> Item:
    """An Item with only its picture loaded (other columns load lazily, as with ``only()``)."""
    item = Item.from_db(connection.alias, ["id", "image_id"], [item_id, image_id])
    item.image = Image.from_db(connection.alias, ["id", "thumbnail"], [image_id, thumbnail])
    return item


def _items_next(cursor, *, params: dict, campaign: Campaign, held: list, count: int, exclude: set[int], rng) -> list:
    """The rows (id, image id, thumbnail) of the items leased: the held ones first, then gold and real ones."""
    weighted = campaign.rule == WEIGHTED
    taken = exclude | {row[0] for row in held}
    wanted = count - len(held)
    n_gold = gold_slots(count=wanted, gold_rate=campaign.gold_rate, rng=rng)
    gold = []
    if n_gold:
        cursor.execute(_sql("gold"), {**params, "exclude": ids(taken), "count": n_gold})
        gold = cursor.fetchall()
    # The first round's INSERT also refreshes the held leases and writes the gold ones.
    pending = [(row[0], None) for row in held + gold]
    rows = {row[0]: row for row in held + gold}
    real: list[int] = []
    tried = set(taken)
    for scope in SCOPES:
        want = wanted - len(gold) - len(real)
        candidates = []
        if want > 0:
            cursor.execute(_sql("pick", scope, weighted=weighted), {**params, "exclude": ids(tried), "count": want})
            candidates = cursor.fetchall()
        if not candidates:
            if want > 0 and scope != "all":
                continue  # the next pick looks wider; the held and gold leases are written with it
            if not pending:
                break
        tried.update(row[0] for row in candidates)
        rows.update((row[0], row) for row in candidates)
        pending += [(row[0], row[3]) for row in candidates]
        cursor.execute(
            _sql("lease"),
            {**params, "ids": ids(pk for pk, _ in pending), "rooms": rooms(room for _, room in pending)},
        )
        leased = {row[0] for row in cursor.fetchall()}
        real += [row[0] for row in candidates if row[0] in leased]
        pending = []
    fresh = real[: max(wanted - len(gold), 0)]
    for row in gold:  # at random places, so gold cannot be told apart by position
        fresh.insert(rng.randint(0, len(fresh)), row[0])
    return [rows[pk][:3] for pk in [r[0] for r in held] + fresh]


def leases_expired_delete(*, now: datetime | None = None) -> int:
    """Drop expired leases (they are already ignored by assignment; this keeps the table small)."""
    deleted, _ = Lease.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted


def lease_release(*, user: AbstractBaseUser, item_id: int) -> bool:
    """Give back ``user``'s lease on an item (a skip), so the item can go to someone else now rather than
    when the lease expires. Idempotent; answers whether a lease was dropped."""
    deleted, _ = Lease.objects.filter(item_id=item_id, user=user).delete()
    return deleted > 0
