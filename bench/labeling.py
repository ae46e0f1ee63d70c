"""Benchmark: 50 concurrent simulated labelers on PostgreSQL doing next + vote through the service layer.

Calls `labeling.assignment.items_next` and `labeling.services.vote_record` directly (the code the API views
call, minus HTTP and DRF), one thread and one database connection per labeler, in a dedicated database
that is created and dropped here (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/spotcheck_bench_c).

Three phases: "human pace" labelers think 1.5 s per picture (exponential), the load 50 people put on it;
"paced" labelers think 120 ms, the offered load the throughput target implies (about 8 votes/s each);
"saturated" labelers never pause, which measures the ceiling. Each prints p50/p95/p99 server time
per call, votes/s, and the correctness counts checked against the votes table afterwards.

    .venv/bin/python bench/labeling.py [--seconds 20] [--labelers 50] [--items 4000] [--think-ms 120]
                                       [--processes 1]   # 2: the same threads spread over two processes
    .venv/bin/python bench/labeling.py --backend sqlite --labelers 10   # the embedded default: correctness
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/spotcheck_bench_c"
TARGET_P95_MS = 25.0
TARGET_VOTES_PER_S = 300.0
LABELS = ["Dealer", "Stock", "Placeholder"]


def _db_admin(url: str, sql: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)


def setup_django(db_url: str | None) -> None:
    if db_url:
        os.environ["DATABASE_URL"] = db_url
    else:
        os.environ.pop("DATABASE_URL", None)  # the embedded default: SQLite (WAL, IMMEDIATE) in a temp folder
    os.environ.pop("REDIS_URL", None)
    os.environ["DEBUG"] = "0"  # no query log kept in memory
    os.environ.setdefault("SECRET_KEY", "bench-only-" + uuid.uuid4().hex)
    os.environ["SPOTCHECK_VAR_DIR"] = tempfile.mkdtemp(prefix="spotcheck-bench-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DB_CONN_MAX_AGE"] = "600"
    import django

    django.setup()
    if os.environ.get("BENCH_SERVER_SIDE_BINDING") == "1":
        # Experiment: psycopg server-side binding, so repeated statements are prepared once per connection.
        from django.conf import settings

        settings.DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(*, n_items: int, n_labelers: int, n_gold: int, rng: random.Random):
    from django.contrib.auth.models import User

    from classification.models import Image
    from labeling.models import Campaign, Item

    campaign = Campaign.objects.create(name=f"bench {uuid.uuid4().hex[:6]}", attribute="image_type", gold_rate=0.05)
    images = Image.objects.bulk_create(
        [Image(sha256=uuid.uuid4().hex + uuid.uuid4().hex, width=800, height=600) for _ in range(n_items + n_gold)]
    )
    truth: dict[int, str] = {}
    items = Item.objects.bulk_create(
        [Item(campaign=campaign, image=img) for img in images[:n_items]]
        + [Item(campaign=campaign, image=img, is_gold=True, gold_label="Stock") for img in images[n_items:]]
    )
    for item in items:
        truth[item.pk] = item.gold_label or rng.choices(LABELS, weights=[6, 3, 1])[0]
    users = User.objects.bulk_create([User(username=f"bench{uuid.uuid4().hex[:10]}") for _ in range(n_labelers)])
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as autovacuum (or SQLite's optimize) would gather
    return campaign, truth, users


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.next_ms: list[float] = []
        self.vote_ms: list[float] = []
        self.counted = 0
        self.refused = 0
        self.errors: list[str] = []

    def add(self, kind: str, ms: float) -> None:
        with self.lock:
            (self.next_ms if kind == "next" else self.vote_ms).append(ms)


def _warm_up(*, user, campaign) -> None:
    """Touch every table the calls use, untimed: a server's long-lived connections have their catalog
    caches warm, a brand-new PostgreSQL backend does not (its first statements on a table are slow)."""
    from classification.models import GroundTruth, Image
    from labeling.models import Item, Lease, Vote

    Item.objects.filter(campaign=campaign, is_gold=False, status="open").order_by("-top_count", "-vote_count", "id")[
        :1
    ].exists()
    Vote.objects.filter(user=user).exists()
    Lease.objects.filter(user=user).exists()
    GroundTruth.objects.filter(pk=0).exists()
    Image.objects.filter(pk=0).exists()


def labeler_loop(*, user, campaign, truth, deadline: float, think_ms: float, seed: int, rec: Recorder) -> None:
    from django.db import connection

    from labeling.assignment import items_next
    from labeling.services import ItemClosed, vote_record

    rng = random.Random(seed)
    accuracy = rng.uniform(0.75, 0.95)
    try:
        # A server keeps its connections open: connect before the clock starts, and do not all start
        # in the same millisecond (people do not).
        connection.ensure_connection()
        _warm_up(user=user, campaign=campaign)
        if think_ms:
            time.sleep(rng.uniform(0, think_ms / 1000))
        while time.time() < deadline:
            t0 = time.perf_counter()
            batch = items_next(user=user, campaign=campaign, count=5, rng=rng)
            rec.add("next", (time.perf_counter() - t0) * 1000)
            if not batch:
                time.sleep(0.05)
                continue
            for assigned in batch:
                if time.time() >= deadline:
                    break
                if think_ms:
                    time.sleep(min(rng.expovariate(1 / (think_ms / 1000)), max(0.0, deadline - time.time())))
                right = truth[assigned.item.pk]
                roll = rng.random()
                if roll < 0.03:
                    label = "cant_tell"
                elif roll < accuracy:
                    label = right
                else:
                    label = rng.choice([x for x in LABELS if x != right])
                t0 = time.perf_counter()
                try:
                    vote_record(user=user, item_id=assigned.item.pk, label=label, client_uuid=uuid.uuid4())
                    counted = True
                except ItemClosed:
                    counted = False
                rec.add("vote", (time.perf_counter() - t0) * 1000)
                with rec.lock:
                    if counted:
                        rec.counted += 1
                    else:
                        rec.refused += 1
    except Exception as exc:  # noqa: BLE001 - reported in the summary, the bench goes on
        with rec.lock:
            rec.errors.append(repr(exc))
    finally:
        connection.close()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def correctness(campaign) -> dict[str, int]:
    from django.db.models import Count, Q

    from classification.models import GroundTruth
    from labeling.consensus import OPEN, consensus
    from labeling.models import Item, Vote

    live = Vote.objects.live().filter(item__campaign=campaign)
    duplicates = live.values("item_id", "user_id").annotate(n=Count("id")).filter(n__gt=1).count()
    over_max = (
        Item.objects.filter(campaign=campaign, is_gold=False)
        .annotate(n=Count("votes", filter=Q(votes__undone_at__isnull=True)))
        .filter(n__gt=campaign.max_votes)
        .count()
    )
    votes_by_item: dict[int, list[str]] = {}
    for item_id, label in live.filter(item__is_gold=False).order_by("id").values_list("item_id", "label"):
        votes_by_item.setdefault(item_id, []).append(label)
    wrong_decisions = tally_mismatch = votes_past_close = 0
    decided = 0
    for item in Item.objects.filter(campaign=campaign, is_gold=False):
        counts: dict[str, int] = {}
        cant = 0
        outcome = consensus(
            counts={}, cant_tell=0, votes_required=campaign.votes_required, max_votes=campaign.max_votes
        )
        for i, label in enumerate(votes_by_item.get(item.pk, [])):
            if outcome.state != OPEN:
                votes_past_close += len(votes_by_item[item.pk]) - i
                break
            if label == "cant_tell":
                cant += 1
            else:
                counts[label] = counts.get(label, 0) + 1
            outcome = consensus(
                counts=counts, cant_tell=cant, votes_required=campaign.votes_required, max_votes=campaign.max_votes
            )
        if (outcome.state, outcome.label) != (item.status, item.label):
            wrong_decisions += 1
        if item.vote_count != len(votes_by_item.get(item.pk, [])):
            tally_mismatch += 1
        decided += item.status == "decided"
    refs = [f"labeling.item:{pk}" for pk in Item.objects.filter(campaign=campaign).values_list("pk", flat=True)]
    gt = GroundTruth.objects.filter(source="consensus", reference__in=refs).count()
    return {
        "duplicate votes": duplicates,
        "items over max_votes": over_max,
        "votes past a decision/conflict": votes_past_close,
        "decisions differing from a replay of the votes": wrong_decisions,
        "tallies differing from the votes table": tally_mismatch,
        "decided items without exactly one ground truth": abs(decided - gt),
        "_decided": decided,
    }


def _threads(*, users, campaign, truth, deadline: float, think_ms: float, seed_base: int) -> Recorder:
    rec = Recorder()
    threads = [
        threading.Thread(
            target=labeler_loop,
            kwargs={
                "user": u,
                "campaign": campaign,
                "truth": truth,
                "deadline": deadline,
                "think_ms": think_ms,
                "seed": seed_base + i,
                "rec": rec,
            },
        )
        for i, u in enumerate(users)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rec


def _child(conn, users, campaign, truth, deadline, think_ms, seed_base) -> None:
    rec = _threads(
        users=users, campaign=campaign, truth=truth, deadline=deadline, think_ms=think_ms, seed_base=seed_base
    )
    conn.send((rec.next_ms, rec.vote_ms, rec.counted, rec.refused, rec.errors))
    conn.close()


def run_phase(*, name: str, args, think_ms: float) -> bool:
    import multiprocessing

    from django.db import connections

    rng = random.Random(hash(name) & 0xFFFF)
    campaign, truth, users = seed(n_items=args.items, n_labelers=args.labelers, n_gold=args.gold, rng=rng)
    connections.close_all()  # children open their own connections
    deadline = time.time() + args.seconds
    started = time.perf_counter()
    if args.processes == 1:
        rec = _threads(users=users, campaign=campaign, truth=truth, deadline=deadline, think_ms=think_ms, seed_base=0)
    else:
        ctx = multiprocessing.get_context("fork")
        children = []
        for p in range(args.processes):
            parent_end, child_end = ctx.Pipe(duplex=False)
            share = users[p :: args.processes]
            proc = ctx.Process(target=_child, args=(child_end, share, campaign, truth, deadline, think_ms, p * 1000))
            proc.start()
            children.append((proc, parent_end))
        rec = Recorder()
        for proc, pipe in children:
            next_ms, vote_ms, counted, refused, errors = pipe.recv()
            proc.join()
            rec.next_ms += next_ms
            rec.vote_ms += vote_ms
            rec.counted += counted
            rec.refused += refused
            rec.errors += errors
    elapsed = time.perf_counter() - started
    calls = rec.next_ms + rec.vote_ms
    votes_per_s = rec.counted / elapsed
    checks = correctness(campaign)
    decided = checks.pop("_decided")
    p95 = pct(calls, 95)
    print(
        f"\n== {name}: {args.labelers} labelers as threads in {args.processes} process(es), "
        f"think {think_ms:.0f} ms, {elapsed:.1f} s =="
    )
    print(f"  calls: {len(rec.next_ms)} next + {len(rec.vote_ms)} vote; errors: {len(rec.errors)}")
    for label, values in (("all calls", calls), ("next", rec.next_ms), ("vote", rec.vote_ms)):
        print(
            f"  {label:<10} p50 {pct(values, 50):6.1f} ms   p95 {pct(values, 95):6.1f} ms   "
            f"p99 {pct(values, 99):6.1f} ms   mean {statistics.fmean(values) if values else float('nan'):6.1f} ms"
        )
    verdict = "ok" if p95 <= TARGET_P95_MS else "MISSED"
    print(f"  p95 per call          {p95:8.1f} ms    target <= {TARGET_P95_MS:.0f} ms   {verdict}")
    print(
        f"  votes counted / s     {votes_per_s:8.1f}       target >= {TARGET_VOTES_PER_S:.0f}      "
        f"{'ok' if votes_per_s >= TARGET_VOTES_PER_S else 'MISSED'}"
    )
    print(f"  votes refused (item closed while held: expected under contention): {rec.refused}")
    print(f"  items decided: {decided}")
    ok = not rec.errors
    for label, value in checks.items():
        print(f"  {label:<48} {value:5d}    target 0   {'ok' if value == 0 else 'WRONG'}")
        ok = ok and value == 0
    if rec.errors:
        print("  first errors:", rec.errors[:3])
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--gold", type=int, default=50)
    parser.add_argument("--think-ms", type=float, default=120.0)
    parser.add_argument("--human-think-ms", type=float, default=1500.0)
    parser.add_argument("--phase", choices=["human", "paced", "saturated", "all"], default="all")
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--processes", type=int, default=1, help="spread the labeler threads over N processes, as N WSGI workers"
    )
    args = parser.parse_args()

    if args.backend == "sqlite":
        # No row locks on SQLite: BEGIN IMMEDIATE serialises writers. A correctness check, not a speed one.
        setup_django(None)
        print(f"labeling bench on embedded SQLite (service layer: items_next + vote_record), {os.cpu_count()} CPUs")
        ok = run_phase(name="sqlite", args=args, think_ms=args.think_ms)
        print("\ncorrectness:", "all counts zero" if ok else "FAILURES above")
        return 0 if ok else 1

    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    name = urlsplit(db_url).path.lstrip("/")
    if not name.startswith("spotcheck_bench"):
        print(f"refusing to create/drop {name!r}: the bench database name must start with spotcheck_bench")
        return 2
    _db_admin(db_url, f'DROP DATABASE IF EXISTS "{name}"')
    _db_admin(db_url, f'CREATE DATABASE "{name}"')
    try:
        setup_django(db_url)
        print(f"labeling bench on PostgreSQL {name} (service layer: items_next + vote_record), {os.cpu_count()} CPUs")
        ok = True
        if args.phase in ("human", "all"):
            ok &= run_phase(name="human pace", args=args, think_ms=args.human_think_ms)
        if args.phase in ("paced", "all"):
            ok &= run_phase(name="paced", args=args, think_ms=args.think_ms)
        if args.phase in ("saturated", "all"):
            ok &= run_phase(name="saturated", args=args, think_ms=0.0)
    finally:
        from django.db import connections

        connections.close_all()
        _db_admin(db_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print("\ncorrectness:", "all counts zero" if ok else "FAILURES above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
