"""Benchmark: stopping rules on a simulated crowd, through the rule code the server uses.

A crowd of good, sloppy and spamming labelers answers items with a skewed class balance, some of them hard
(even good labelers err there). Each labeler first answers gold items; their accuracy is estimated from those
answers by ``labeling.consensus.voter_accuracy``, exactly as the server estimates it from gold votes. Items then
receive votes one at a time from labelers who have not voted on them, and each rule is
``labeling.consensus.Rule.outcome`` — the object the vote service calls — until the item is decided or a
conflict. Prints, per rule: accuracy of decided items, share decided, votes per item (conflicts included),
beside the target: the weighted rule matches or beats "5 agree, cap 9" in accuracy at <= 4.5 votes per item.

    .venv/bin/python bench/consensus.py [--items 4000] [--labelers 40] [--seeds 7,8,9] [--gold 15]
"""

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeling.consensus import COUNT, DECIDED, OPEN, WEIGHTED, Rule, voter_accuracy  # noqa: E402

LABELS = ["Dealer", "Stock", "Placeholder"]
CLASS_SHARE = [0.78, 0.15, 0.07]  # most listing pictures are dealer photos
HARD_SHARE = 0.15  # pictures where even good labelers hesitate
CANT_TELL_ON_HARD = 0.15
TARGET_VOTES_PER_ITEM = 4.5


@dataclass
class Labeler:
    kind: str
    accuracy: float  # on an ordinary picture
    hard_accuracy: float
    estimate: float = 0.0  # from gold, filled in by answer_gold


CROWD = [  # kind, share of the crowd, accuracy on ordinary / hard pictures
    ("good", 0.6, 0.95, 0.75),
    ("sloppy", 0.25, 0.78, 0.55),
    ("spammer", 0.15, 1 / len(LABELS), 1 / len(LABELS)),
]


def make_crowd(n: int, rng: random.Random) -> list[Labeler]:
    people = []
    for kind, share, acc, hard in CROWD:
        people += [Labeler(kind, acc, hard) for _ in range(max(1, round(n * share)))]
    rng.shuffle(people)
    return people


def answer(person: Labeler, truth: str, hard: bool, rng: random.Random) -> str:
    if person.kind == "spammer":
        return rng.choice(LABELS)
    if hard and rng.random() < CANT_TELL_ON_HARD:
        return "cant_tell"
    if rng.random() < (person.hard_accuracy if hard else person.accuracy):
        return truth
    return rng.choice([label for label in LABELS if label != truth])


def answer_gold(crowd: list[Labeler], n_gold: int, rng: random.Random) -> None:
    """Gold pictures are chosen to be clear, and "can't tell" on gold counts as wrong (as on the server)."""
    for person in crowd:
        truths = rng.choices(LABELS, weights=CLASS_SHARE, k=n_gold)
        correct = sum(answer(person, t, False, rng) == t for t in truths)
        person.estimate = voter_accuracy(gold_correct=correct, gold_answered=n_gold)


@dataclass
class Result:
    name: str
    decided: int = 0
    right: int = 0
    items: int = 0
    votes: int = 0

    def line(self) -> str:
        accuracy = self.right / self.decided if self.decided else 0.0
        return f"{self.name:<28} {accuracy:>9.2%} {self.decided / self.items:>9.1%} {self.votes / self.items:>10.2f}"


def simulate(rule: Rule, name: str, *, crowd, items, seed: int) -> Result:
    rng = random.Random(seed)  # the same voter order and answers for every rule: a paired comparison
    result = Result(name, items=len(items))
    for truth, hard in items:
        order = rng.sample(crowd, len(crowd))
        answers = [(answer(person, truth, hard, rng), person.estimate) for person in order]
        counts: dict[str, int] = {}
        cant = 0
        given: list[tuple[str, float]] = []
        outcome = rule.outcome(counts=counts, cant_tell=0)
        for label, estimate in answers:
            if outcome.state != OPEN:
                break
            result.votes += 1
            if label == "cant_tell":
                cant += 1
            else:
                counts[label] = counts.get(label, 0) + 1
                given.append((label, estimate))
            outcome = rule.outcome(counts=counts, cant_tell=cant, votes=given)
        if outcome.state == DECIDED:
            result.decided += 1
            result.right += outcome.label == truth
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--labelers", type=int, default=40)
    parser.add_argument("--gold", type=int, default=15, help="gold answers per labeler before the run")
    parser.add_argument("--seeds", default="7,8,9", help="one crowd and item set per seed; figures are pooled")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    n = len(LABELS)
    rules = [
        ("count: 5 agree, cap 9", Rule(mode=COUNT, votes_required=5, max_votes=9, n_labels=n)),
        ("count: 3 agree, cap 5", Rule(mode=COUNT, votes_required=3, max_votes=5, n_labels=n)),
        (
            "weighted 0.99, 2..9 votes",
            Rule(mode=WEIGHTED, votes_required=5, max_votes=9, n_labels=n, min_votes=2, threshold=0.99),
        ),
        (
            "weighted 0.995, 2..9 votes",
            Rule(mode=WEIGHTED, votes_required=5, max_votes=9, n_labels=n, min_votes=2, threshold=0.995),
        ),
    ]
    results = {name: Result(name) for name, _ in rules}
    kinds: dict[str, list[float]] = {}
    for seed in seeds:
        rng = random.Random(seed)
        crowd = make_crowd(args.labelers, rng)
        answer_gold(crowd, args.gold, rng)
        items = [(rng.choices(LABELS, weights=CLASS_SHARE)[0], rng.random() < HARD_SHARE) for _ in range(args.items)]
        for person in crowd:
            kinds.setdefault(person.kind, []).append(person.estimate)
        for name, rule in rules:
            one = simulate(rule, name, crowd=crowd, items=items, seed=seed + 1)
            total = results[name]
            total.decided, total.right = total.decided + one.decided, total.right + one.right
            total.items, total.votes = total.items + one.items, total.votes + one.votes
    print(
        f"{args.items} items per seed ({', '.join(f'{s:.0%} {c}' for c, s in zip(LABELS, CLASS_SHARE, strict=True))};"
        f" {HARD_SHARE:.0%} hard), {args.labelers} labelers, {args.gold} gold answers each; seeds {args.seeds}"
    )
    print("accuracy estimated from gold: " + ", ".join(f"{k} mean {sum(v) / len(v):.2f}" for k, v in kinds.items()))
    print(f"{'rule':<28} {'accuracy':>9} {'decided':>9} {'votes/item':>10}")
    for name, _ in rules:
        print(results[name].line())
    base = results["count: 5 agree, cap 9"]
    weighted = results["weighted 0.99, 2..9 votes"]
    base_acc = base.right / base.decided
    w_acc = weighted.right / weighted.decided
    w_votes = weighted.votes / weighted.items
    ok = w_acc >= base_acc and w_votes <= TARGET_VOTES_PER_ITEM
    print(
        f"target: weighted 0.99 accuracy >= count 5/9 ({w_acc:.2%} vs {base_acc:.2%}) at <= "
        f"{TARGET_VOTES_PER_ITEM} votes/item ({w_votes:.2f}): {'MET' if ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
