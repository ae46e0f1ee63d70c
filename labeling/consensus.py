"""The consensus rule, as a pure function of an item's tally (no database, no clock).

An item is decided when one label reaches ``votes_required``; it is a conflict as soon as no label can
still reach it within ``max_votes``; "can't tell" answers count toward ``max_votes`` only.
"""

from collections.abc import Mapping
from dataclasses import dataclass

OPEN = "open"
DECIDED = "decided"
CONFLICT = "conflict"


@dataclass(frozen=True)
class Outcome:
    state: str  # open / decided / conflict
    label: str  # the winning label when decided, else ""
    margin: int  # top count minus the runner-up's count
    total: int  # votes counted, can't tell included
    top: int  # the highest per-label count


def consensus(*, counts: Mapping[str, int], cant_tell: int, votes_required: int, max_votes: int) -> Outcome:
    """Where an item stands given its per-label counts and can't-tell answers.

    Raises ValueError for an impossible tally (negative counts, more votes than ``max_votes``).
    """
    if votes_required < 1 or max_votes < votes_required:
        raise ValueError("need 1 <= votes_required <= max_votes")
    if cant_tell < 0 or any(n < 0 for n in counts.values()):
        raise ValueError("counts cannot be negative")
    total = sum(counts.values()) + cant_tell
    if total > max_votes:
        raise ValueError(f"{total} votes exceed max_votes={max_votes}")
    ranked = sorted(((n, label) for label, n in counts.items() if n > 0), key=lambda p: (-p[0], p[1]))
    top = ranked[0][0] if ranked else 0
    second = ranked[1][0] if len(ranked) > 1 else 0
    margin = top - second
    if top >= votes_required:
        # Votes are applied one at a time and the first label to reach the bar wins, so a tie at or above
        # it cannot arise from real voting; for an arbitrary tally it is reported as a conflict.
        if margin == 0:
            return Outcome(CONFLICT, "", 0, total, top)
        return Outcome(DECIDED, ranked[0][1], margin, total, top)
    # The best any label (even one nobody chose yet) can do is the current top plus every remaining vote.
    if top + (max_votes - total) < votes_required:
        return Outcome(CONFLICT, "", margin, total, top)
    return Outcome(OPEN, "", margin, total, top)


def lease_capacity(*, top: int, total: int, votes_required: int, max_votes: int) -> int:
    """How many people an open item may be leased to: the fewest further votes that could close it either
    way, so that every leased answer is still counted whatever the others answer.

    A decision needs at least ``votes_required - top`` more votes; a conflict may come after
    ``top + max_votes - total - votes_required + 1`` (each going to another label or can't tell).
    ``lease_capacity_sql`` is this same rule for the assignment query; tests hold the two to one table.
    """
    return max(0, min(votes_required - top, top + max_votes - total - votes_required + 1))


def lease_capacity_sql(*, top: str, total: str, votes_required: str, max_votes: str) -> str:
    """``lease_capacity`` as a SQL expression over the given column or parameter expressions (portable:
    PostgreSQL and SQLite; the clamp at 0 is left out, callers compare ``leased < capacity``)."""
    to_decide = f"({votes_required} - {top})"
    to_conflict = f"({top} + {max_votes} - {total} - {votes_required} + 1)"
    return f"(CASE WHEN {to_decide} < {to_conflict} THEN {to_decide} ELSE {to_conflict} END)"
