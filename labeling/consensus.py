"""The consensus rules, as pure functions of an item's votes (no database, no clock).

The default ("count"): an item is decided when one label reaches ``votes_required``; it is a conflict as
soon as no label can still reach it within ``max_votes``; "can't tell" answers count toward ``max_votes``
only. The quality-weighted rule ("weighted") decides when the leading label's posterior, given each voter's
gold-estimated accuracy, reaches a threshold. The server (labeling.quality) and bench/consensus.py both go
through ``Rule`` below: there is one implementation of each rule.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OPEN = "open"
DECIDED = "decided"
CONFLICT = "conflict"
COUNT = "count"
WEIGHTED = "weighted"
CANT_TELL = "cant_tell"  # the same value as labeling.models.CANT_TELL (this module imports no models)


@dataclass(frozen=True)
class Outcome:
    state: str  # open / decided / conflict
    label: str  # the winning label when decided, else ""
    margin: int  # top count minus the runner-up's count
    total: int  # votes counted, can't tell included
    top: int  # the highest per-label count
    posterior: float | None = None  # the decided label's posterior (weighted rule only)


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


def lease_capacity(
    *, top: int, total: int, votes_required: int, max_votes: int, weighted: bool = False, min_votes: int = 1
) -> int:
    """How many people an open item may be leased to: the fewest further votes that could close it either
    way, so that every leased answer is still counted whatever the others answer.

    Count rule: a decision needs at least ``votes_required - top`` more votes; a conflict may come after
    ``top + max_votes - total - votes_required + 1`` (each going to another label or can't tell).
    Weighted rule (``weighted``): a decision is taken as needing ``min_votes - top`` more, at least one (the
    posterior may decide sooner than the counts suggest, so an answer can still find the item closed); the
    item closes at ``max_votes`` whatever the answers, so never more than ``max_votes - total`` people.
    ``lease_capacity_sql`` is this same rule for the assignment query; tests hold the two to one table.
    """
    if weighted:
        return max(0, min(max(min_votes - top, 1), max_votes - total))
    return max(0, min(votes_required - top, top + max_votes - total - votes_required + 1))


def lease_capacity_sql(
    *, top: str, total: str, votes_required: str, max_votes: str, weighted: bool = False, min_votes: str = "1"
) -> str:
    """``lease_capacity`` as a SQL expression over the given column or parameter expressions (portable:
    PostgreSQL and SQLite; the clamp at 0 is left out, callers compare ``leased < capacity``)."""
    if weighted:
        to_decide = f"(CASE WHEN {min_votes} - {top} > 1 THEN {min_votes} - {top} ELSE 1 END)"
        to_conflict = f"({max_votes} - {total})"
    else:
        to_decide = f"({votes_required} - {top})"
        to_conflict = f"({top} + {max_votes} - {total} - {votes_required} + 1)"
    return f"(CASE WHEN {to_decide} < {to_conflict} THEN {to_decide} ELSE {to_conflict} END)"


# --- The quality-weighted rule (campaign rule "weighted") -------------------------------------------------
#
# Each voter v has an accuracy p_v estimated from their gold answers (a Beta prior, so a newcomer is neither
# trusted nor ignored). One-coin model: a voter is right with probability p_v, else picks any of the other
# K - 1 answers alike. Pictures differ in difficulty, and treating votes on a hard picture as independent
# makes two people who agree by mistake look certain; so the likelihood of the votes given a label is a
# mixture of an ordinary picture (accuracy p_v) and, with prior HARD_SHARE, a hard one where each voter's
# skill above chance shrinks by HARD_SKILL. The prior over labels is uniform.

# Beta prior on a voter's accuracy: a colleague with no gold answers yet counts as right 4 times in 5.
PRIOR_RIGHT = 4.0
PRIOR_WRONG = 1.0
# No voter is trusted beyond this, so one person never decides alone whatever their gold record.
ACCURACY_MAX = 0.97
HARD_SHARE = 0.15
HARD_SKILL = 0.6


def voter_accuracy(*, gold_correct: int, gold_answered: int) -> float:
    """A voter's accuracy: the posterior mean under the Beta(PRIOR_RIGHT, PRIOR_WRONG) prior, capped."""
    if gold_correct < 0 or gold_answered < gold_correct:
        raise ValueError("need 0 <= gold_correct <= gold_answered")
    mean = (gold_correct + PRIOR_RIGHT) / (gold_answered + PRIOR_RIGHT + PRIOR_WRONG)
    return min(mean, ACCURACY_MAX)


def _log_likelihood(votes: Sequence[tuple[str, float]], label: str, n_labels: int, skill: float) -> float:
    chance = 1.0 / n_labels
    total = 0.0
    for given, accuracy in votes:
        # Never below chance: a spammer's answer is ignored rather than read backwards.
        p = chance + (min(max(accuracy, chance), ACCURACY_MAX) - chance) * skill
        total += math.log(p if given == label else (1.0 - p) / (n_labels - 1))
    return total


def posterior(*, votes: Sequence[tuple[str, float]], n_labels: int) -> dict[str, float]:
    """P(label | votes) for each label that has votes (labels nobody chose share the rest)."""
    if n_labels < 2:
        raise ValueError("a question needs at least two answers")
    labels = sorted({label for label, _ in votes})
    if len(labels) > n_labels:
        raise ValueError("more labels voted than the question has")
    candidates = [*labels, *([None] if len(labels) < n_labels else [])]  # None: any label nobody chose
    log_mix = {}
    for label in candidates:
        easy = math.log(1.0 - HARD_SHARE) + _log_likelihood(votes, label, n_labels, 1.0)
        hard = math.log(HARD_SHARE) + _log_likelihood(votes, label, n_labels, HARD_SKILL)
        top = max(easy, hard)
        log_mix[label] = top + math.log(math.exp(easy - top) + math.exp(hard - top))
    top = max(log_mix.values())  # shift before exp: no underflow whatever the number of votes
    weights = {label: math.exp(v - top) for label, v in log_mix.items()}
    scale = sum(w for label, w in weights.items() if label is not None)
    scale += weights.get(None, 0.0) * (n_labels - len(labels))
    return {label: weights[label] / scale for label in labels}


def weighted_consensus(
    *,
    votes: Sequence[tuple[str, float]],
    cant_tell: int,
    n_labels: int,
    threshold: float,
    min_votes: int,
    max_votes: int,
) -> Outcome:
    """Where an item stands given its votes as (label, the voter's accuracy) and its can't-tell answers.

    Decided when at least ``min_votes`` votes are in and the leading label's posterior reaches ``threshold``;
    a conflict when ``max_votes`` votes are spent without that; can't tell counts toward both vote bars only.
    """
    if min_votes < 1 or max_votes < min_votes:
        raise ValueError("need 1 <= min_votes <= max_votes")
    if not 0.5 <= threshold < 1:
        raise ValueError("threshold must be in [0.5, 1)")
    if cant_tell < 0:
        raise ValueError("counts cannot be negative")
    total = len(votes) + cant_tell
    if total > max_votes:
        raise ValueError(f"{total} votes exceed max_votes={max_votes}")
    counts: dict[str, int] = {}
    for label, _ in votes:
        counts[label] = counts.get(label, 0) + 1
    ranked = sorted(counts.values(), reverse=True)
    top = ranked[0] if ranked else 0
    margin = top - (ranked[1] if len(ranked) > 1 else 0)
    if votes and total >= min_votes:
        chances = posterior(votes=votes, n_labels=n_labels)
        leader = max(sorted(chances), key=chances.get)
        if chances[leader] >= threshold:
            return Outcome(
                DECIDED,
                leader,
                counts[leader] - max([n for k, n in counts.items() if k != leader] + [0]),
                total,
                top,
                chances[leader],
            )
    state = CONFLICT if total >= max_votes else OPEN
    return Outcome(state, "", margin, total, top)


@dataclass(frozen=True)
class Rule:
    """A campaign's stopping rule: "count" (``votes_required`` agree, cap ``max_votes``) or "weighted"."""

    mode: str
    votes_required: int
    max_votes: int
    n_labels: int
    min_votes: int = 1
    threshold: float = 0.99

    @classmethod
    def of(cls, campaign) -> "Rule":
        return cls(
            mode=campaign.rule,
            votes_required=campaign.votes_required,
            max_votes=campaign.max_votes,
            n_labels=len(campaign.choices),
            min_votes=campaign.min_votes,
            threshold=campaign.threshold,
        )

    @property
    def weighted(self) -> bool:
        return self.mode == WEIGHTED

    def outcome(self, *, counts: Mapping[str, int], cant_tell: int, votes: Sequence[tuple[str, float]] = ()) -> Outcome:
        """The item's state under this rule; ``votes`` (label, voter accuracy) are read by the weighted rule."""
        if self.weighted:
            return weighted_consensus(
                votes=votes,
                cant_tell=cant_tell,
                n_labels=self.n_labels,
                threshold=self.threshold,
                min_votes=self.min_votes,
                max_votes=self.max_votes,
            )
        return consensus(
            counts=counts, cant_tell=cant_tell, votes_required=self.votes_required, max_votes=self.max_votes
        )

    def replay(self, votes: Sequence[tuple[str, float]]) -> Outcome:
        """Apply votes (label or can't tell, voter accuracy) one at a time, as the server receives them, and
        stop at the first that closes the item: later votes would have been refused."""
        counts: dict[str, int] = {}
        cant = 0
        given: list[tuple[str, float]] = []
        outcome = self.outcome(counts=counts, cant_tell=0)
        for label, accuracy in votes:
            if outcome.state != OPEN:
                break
            if label == CANT_TELL:
                cant += 1
            else:
                counts[label] = counts.get(label, 0) + 1
                given.append((label, accuracy))
            outcome = self.outcome(counts=counts, cant_tell=cant, votes=given)
        return outcome

    def lease_capacity(self, *, top: int, total: int) -> int:
        """How many people an open item at this tally may be leased to under this rule (``lease_capacity``)."""
        return lease_capacity(
            top=top,
            total=total,
            votes_required=self.votes_required,
            max_votes=self.max_votes,
            weighted=self.weighted,
            min_votes=self.min_votes,
        )
