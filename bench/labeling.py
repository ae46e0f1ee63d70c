"""Benchmark: 50 concurrent simulated labelers on PostgreSQL doing next + vote through the service layer.

Calls `labeling.assignment.items_next` and `labeling.services.vote_record` directly (the code the API views
call, minus HTTP and DRF), one thread and one database connection per labeler, in a dedicated database
that is created and dropped here (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/spotcheck_bench_c).

Deployment shape: the labelers are spread over ``--processes`` processes (default 2), as a gunicorn
deployment runs one sync worker process per core on our 2-core host; one process alone measures one
worker's GIL, not the server. Each simulated labeler leases the way the phone UI does
(static/js/labeling.js): 8 items at first, then, whenever 3 or fewer are left beyond the one on screen,
enough to be back at 8, excluding the items it already holds.

Three phases: "human pace" labelers think 1.5 s per picture (exponential), the load 50 people put on it;
"paced" labelers think 120 ms, the offered load the throughput target implies (about 8 votes/s each);
"saturated" labelers never pause, which measures the ceiling (its call times are queueing, by Little's
law). Each prints p50/p95/p99 server time
per call (per call type and overall) over the whole run, the median over 5-second windows of votes/s and
of p95, CPU per counted vote (bench process and its PostgreSQL backends, from /proc), and the correctness
counts checked against the votes table afterwards. "profile" runs one
labeler alone and prints queries and Python CPU per call (and the top of cProfile with --cprofile).

    .venv/bin/python bench/labeling.py [--seconds 20] [--labelers 50] [--items 4000] [--think-ms 120]
                                       [--processes 2] [--phase human|paced|saturated|all|profile]
    .venv/bin/python bench/labeling.py --backend sqlite --labelers 10 --processes 1   # correctness only
"""

import argparse
import contextlib
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
# The phone UI's leasing (static/js/labeling.js): BATCH leased in all, refilled when AHEAD or fewer are left.
PHONE_BATCH = 8
PHONE_AHEAD = 3
WINDOW_S = 5.0


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
        # (kind, wall-clock end time, ms): the end time puts a call into its 5-second window
        self.calls: list[tuple[str, float, float]] = []
        self.counted_at: list[float] = []
        self.refused = 0
        self.errors: list[str] = []
        self.pg_cpu_s = 0.0  # CPU of this recorder's PostgreSQL backends while the clock ran
        self.py_cpu_s = 0.0  # CPU of the bench process(es) while the clock ran

    def add(self, kind: str, ms: float) -> None:
        with self.lock:
            self.calls.append((kind, time.time(), ms))

    @property
    def counted(self) -> int:
        return len(self.counted_at)


def _backend_cpu_s(connection) -> float:
    """CPU seconds used so far by this connection's PostgreSQL backend (same host: /proc/<pid>/stat)."""
    if connection.vendor != "postgresql":
        return 0.0  # SQLite runs inside the bench process: already in the Python figure
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # the server is on another host: not measured
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        backend_cpu = _backend_cpu_s(connection)
        if think_ms:
            time.sleep(rng.uniform(0, think_ms / 1000))
        held: list[int] = []  # leased and not yet answered, the one on screen first
        seen: list[int] = []  # the phone excludes every item this page received from the next lease
        while time.time() < deadline:
            if len(held) <= PHONE_AHEAD + 1:  # the one on screen + AHEAD or fewer preloaded: refill
                t0 = time.perf_counter()
                batch = items_next(
                    user=user,
                    campaign=campaign,
                    count=PHONE_BATCH - len(held),
                    exclude_ids=set(seen[-200:]),
                    rng=rng,
                )
                rec.add("next", (time.perf_counter() - t0) * 1000)
                for assigned in batch:
                    if assigned.item.pk not in seen:
                        seen.append(assigned.item.pk)
                        held.append(assigned.item.pk)
            if not held:
                time.sleep(0.05)
                continue
            item_id = held.pop(0)
            if think_ms:
                time.sleep(min(rng.expovariate(1 / (think_ms / 1000)), max(0.0, deadline - time.time())))
            if time.time() >= deadline:
                break
            right = truth[item_id]
            roll = rng.random()
            if roll < 0.03:
                label = "cant_tell"
            elif roll < accuracy:
                label = right
            else:
                label = rng.choice([x for x in LABELS if x != right])
            t0 = time.perf_counter()
            try:
                vote_record(user=user, item_id=item_id, label=label, client_uuid=uuid.uuid4())
                counted = True
            except ItemClosed:
                counted = False
            rec.add("vote", (time.perf_counter() - t0) * 1000)
            with rec.lock:
                if counted:
                    rec.counted_at.append(time.time())
                else:
                    rec.refused += 1
    except Exception as exc:  # noqa: BLE001 - reported in the summary, the bench goes on
        with rec.lock:
            rec.errors.append(repr(exc))
    finally:
        try:
            used = _backend_cpu_s(connection) - backend_cpu
            with rec.lock:
                rec.pg_cpu_s += used
        except Exception:  # noqa: BLE001 - a figure, not a check
            pass
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
    cpu0 = time.process_time()
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
    rec.py_cpu_s = time.process_time() - cpu0
    return rec


def _child(conn, users, campaign, truth, deadline, think_ms, seed_base) -> None:
    rec = _threads(
        users=users, campaign=campaign, truth=truth, deadline=deadline, think_ms=think_ms, seed_base=seed_base
    )
    conn.send((rec.calls, rec.counted_at, rec.refused, rec.errors, rec.pg_cpu_s, rec.py_cpu_s))
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
            calls, counted_at, refused, errors, pg_cpu_s, py_cpu_s = pipe.recv()
            proc.join()
            rec.calls += calls
            rec.counted_at += counted_at
            rec.refused += refused
            rec.errors += errors
            rec.pg_cpu_s += pg_cpu_s
            rec.py_cpu_s += py_cpu_s
    elapsed = time.perf_counter() - started
    start_wall = deadline - args.seconds
    calls = [ms for _, _, ms in rec.calls]
    next_ms = [ms for kind, _, ms in rec.calls if kind == "next"]
    vote_ms = [ms for kind, _, ms in rec.calls if kind == "vote"]
    votes_per_s = rec.counted / elapsed
    # Medians over the run: per 5-second window (the last, partial one dropped), then the median window.
    n_windows = max(1, int(args.seconds // WINDOW_S))
    window_votes = [0] * n_windows
    window_calls: list[list[float]] = [[] for _ in range(n_windows)]
    for t in rec.counted_at:
        w = int((t - start_wall) // WINDOW_S)
        if 0 <= w < n_windows:
            window_votes[w] += 1
    for _, t, ms in rec.calls:
        w = int((t - start_wall) // WINDOW_S)
        if 0 <= w < n_windows:
            window_calls[w].append(ms)
    median_votes_per_s = statistics.median(v / WINDOW_S for v in window_votes)
    median_p95 = statistics.median(pct(c, 95) for c in window_calls if c) if any(window_calls) else float("nan")
    checks = correctness(campaign)
    decided = checks.pop("_decided")
    p95 = pct(calls, 95)
    print(
        f"\n== {name}: {args.labelers} labelers as threads in {args.processes} process(es), "
        f"think {think_ms:.0f} ms, phone leasing {PHONE_BATCH} ahead, {elapsed:.1f} s, {os.cpu_count()} CPUs =="
    )
    print(
        f"  calls: {len(next_ms)} next + {len(vote_ms)} vote "
        f"({len(vote_ms) / max(len(next_ms), 1):.1f} votes per next); errors: {len(rec.errors)}"
    )
    for label, values in (("all calls", calls), ("next", next_ms), ("vote", vote_ms)):
        print(
            f"  {label:<10} p50 {pct(values, 50):6.1f} ms   p95 {pct(values, 95):6.1f} ms   "
            f"p99 {pct(values, 99):6.1f} ms   mean {statistics.fmean(values) if values else float('nan'):6.1f} ms"
        )
    for label, value, ok_ in (
        ("p95 per call (run)", p95, p95 <= TARGET_P95_MS),
        (f"p95 per call (median of {n_windows} windows)", median_p95, median_p95 <= TARGET_P95_MS),
    ):
        print(f"  {label:<38} {value:8.1f} ms   target <= {TARGET_P95_MS:.0f} ms   {'ok' if ok_ else 'MISSED'}")
    # With think time the labelers cannot offer more than labelers / think votes per second; below the target
    # the throughput figure says what was offered, not what the server can do (the paced phase tests that).
    offered = args.labelers / (think_ms / 1000) if think_ms else float("inf")
    for label, value in (
        ("votes counted / s (run)", votes_per_s),
        (f"votes counted / s (median of {n_windows} windows)", median_votes_per_s),
    ):
        verdict = "ok" if value >= TARGET_VOTES_PER_S else "MISSED"
        if offered < TARGET_VOTES_PER_S:
            verdict = f"n/a: {offered:.0f} offered"
        print(f"  {label:<38} {value:8.1f}      target >= {TARGET_VOTES_PER_S:.0f}     {verdict}")
    if rec.counted:
        print(
            f"  CPU per counted vote (its share of next included): Python {rec.py_cpu_s * 1000 / rec.counted:.2f} ms"
            f" + PostgreSQL {rec.pg_cpu_s * 1000 / rec.counted:.2f} ms; "
            f"the 2 cores allow at most {2000 / ((rec.py_cpu_s + rec.pg_cpu_s) * 1000 / rec.counted):.0f} votes/s"
        )
    if not think_ms and rec.counted:
        cycle_ms = args.labelers * 1000 / (len(vote_ms) / elapsed)
        print(
            f"  (no think time: each labeler waits only on the server, so a call's time is queueing behind the other "
            f"{args.labelers - 1}; {args.labelers} labelers / votes per s = {cycle_ms:.0f} ms per vote cycle. "
            f"This phase measures the ceiling, the latency target applies to the paced phase)"
        )
    if think_ms:
        print(f"  (offered load at this think time: at most {offered:.0f} votes/s; the target needs think <= 166 ms)")
    print(f"  votes refused (item closed while held: expected under contention): {rec.refused}")
    print(f"  items decided: {decided}")
    ok = not rec.errors
    for label, value in checks.items():
        print(f"  {label:<48} {value:5d}    target 0   {'ok' if value == 0 else 'WRONG'}")
        ok = ok and value == 0
    if rec.errors:
        print("  first errors:", rec.errors[:3])
    return ok


def profile(args) -> None:
    """One labeler alone: statements and Python CPU per call, no contention (what each call costs)."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from labeling.assignment import items_next
    from labeling.services import ItemClosed, vote_record

    campaign, truth, users = seed(n_items=args.items, n_labelers=10, n_gold=args.gold, rng=random.Random(1))
    rng = random.Random(2)
    stats = {"next": ([], []), "vote": ([], [])}  # kind -> (queries, cpu ms)
    profiler = cProfile.Profile() if args.cprofile else None

    def timed(kind, fn, *, capture: bool):
        # Statements are counted on the first rounds only: the capturing cursor's own cost would inflate CPU.
        if capture:
            with CaptureQueriesContext(connection) as ctx:
                result = fn()
            stats[kind][0].append(len(ctx.captured_queries))
            return result
        cpu = time.process_time()
        if profiler:
            profiler.enable()
        try:
            return fn()
        finally:
            if profiler:
                profiler.disable()
            stats[kind][1].append((time.process_time() - cpu) * 1000)

    _warm_up(user=users[0], campaign=campaign)
    for round_ in range(60):
        capture = round_ < 10
        for user in users:
            batch = timed(
                "next", lambda u=user: items_next(user=u, campaign=campaign, count=4, rng=rng), capture=capture
            )
            for assigned in batch:
                label = truth[assigned.item.pk] if rng.random() < 0.8 else rng.choice(LABELS)
                with contextlib.suppress(ItemClosed):
                    timed(
                        "vote",
                        lambda u=user, a=assigned, lab=label: vote_record(
                            user=u, item_id=a.item.pk, label=lab, client_uuid=uuid.uuid4()
                        ),
                        capture=capture,
                    )
    print(f"\n== profile: one labeler at a time, {connection.vendor}, statements counted include BEGIN and COMMIT ==")
    for kind, (queries, cpu) in stats.items():
        print(
            f"  {kind:<5} calls {len(cpu):5d}   statements per call: median {statistics.median(queries):.0f}, "
            f"max {max(queries)}   Python CPU per call: median {statistics.median(cpu):.2f} ms, "
            f"p95 {pct(cpu, 95):.2f} ms"
        )
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--gold", type=int, default=50)
    parser.add_argument("--think-ms", type=float, default=120.0)
    parser.add_argument("--human-think-ms", type=float, default=1500.0)
    parser.add_argument("--phase", choices=["human", "paced", "saturated", "all", "profile"], default="all")
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="spread the labeler threads over N processes, as N WSGI workers (default 2: one per core)",
    )
    parser.add_argument("--cprofile", action="store_true", help="with --phase profile: print the top of cProfile")
    args = parser.parse_args()

    if args.backend == "sqlite":
        # No row locks on SQLite: BEGIN IMMEDIATE serialises writers. A correctness check, not a speed one.
        setup_django(None)
        if args.phase == "profile":
            profile(args)
            return 0
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
        if args.phase == "profile":
            profile(args)
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
