"""Benchmark: N labelers through HTTP, "next" + "vote" the way the phone makes them, against a real server.

Each labeler is one thread with one keep-alive connection (http.client) and its own API token. Two setups,
each started here as a user starts it, on a port in --port's range, in a throwaway folder or database:

- ``embedded``: exactly ``make run`` (SQLite, filesystem broker, the Celery worker, the demo seed, the web
  server of ``manage.py serve``: granian);
- ``production``: docs/deploy.md's web tier (gunicorn, threads, one process per core) with ``DEBUG=0``, PostgreSQL
  (BENCH_DATABASE_URL) and Redis (BENCH_REDIS_URL) as cache. A server with autovacuum off (CI machines) gets
  the labeling tables vacuumed between rounds instead, as production's autovacuum would.

Shapes of one labeler's work:
- ``cycle``: POST next {"count": 1} then POST votes/ — one "next" + one "vote" per answer;
- ``phone``: the phone's leasing (static/js/labeling.js: 8 leased, refilled when 3 or fewer remain beyond the
  one on screen, excluding what it holds) and one POST votes/ per answer;
- ``batch``: the same leasing, the answers queued meanwhile uploaded in one POST votes/batch/.

Phases: ``saturated`` labelers never pause (the throughput ceiling, closed loop); ``paced`` labelers think
--think-ms (exponential) per answer, the offered load of a fast crowd (latency under load).

Per round it prints votes/s, p50/p95/p99 per call, server CPU per counted answer (the server's processes
from /proc over the measured window: web processes, plus the PostgreSQL backends of the bench database),
errors by status and connection errors, and the correctness counts checked in the database after the round:
duplicates (two live votes of one person on one item, or one acknowledged answer stored twice), over cap
(a real item with more counted votes than max_votes, or a tally that differs from its counted votes: the
live votes of labelers not flagged by gold), answered but missing (acknowledged with 200/201 and not in the
votes table). Figures are printed beside the targets.

``--profile`` runs the setup's web server as one single-threaded gunicorn worker under cProfile (a
gunicorn config in this folder), drives it with 5 labelers and prints where a request's time goes, by layer.

    .venv/bin/python bench/http_loop.py                        # both setups, 1/5/20/50 labelers, all phases
    .venv/bin/python bench/http_loop.py --setup embedded --labelers 20 --phase saturated --seconds 10
    .venv/bin/python bench/http_loop.py --setup production --profile
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/spotcheck_httploop"
DEFAULT_REDIS = "redis://127.0.0.1:6379/8"
LABELS = ["Dealer", "Stock", "Placeholder"]
PHONE_BATCH = 8
PHONE_AHEAD = 3
CLK = os.sysconf("SC_CLK_TCK")

# Targets of issue 14 (2 cores, client on the same machine).
TARGET_CPU_MS = 10.0  # server CPU per next + vote cycle
TARGET_VOTES = {1: 30.0, 5: 30.0, 20: 18.0, 50: 9.0}  # at least, every setup
TARGET_P95_EMBEDDED = {20: 50.0, 50: 100.0}  # next and vote p95, embedded
TARGET_VOTES_PRODUCTION_50 = 250.0
TARGET_P95_PRODUCTION_50 = 25.0


# --------------------------------------------------------------------------------------------------------
# /proc: CPU of the server's processes
# --------------------------------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def process_tree(root: int) -> dict[int, str]:
    """Every live descendant of ``root`` (itself included) → its role: web, worker or other."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat:
                parents[int(entry.name)] = stat[0]
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    roles = {}
    for pid in tree:
        cmd = _cmdline(pid)
        web = any(server in cmd for server in ("granian", "gunicorn", "runserver"))
        roles[pid] = "web" if web else "worker" if "celery" in cmd else "other"
    return roles


class CpuMeter:
    """CPU seconds of the server's processes (by role) and of the PostgreSQL backends of one database."""

    def __init__(self, *, root_pid: int, pg_url: str | None):
        self.root_pid = root_pid
        self.pg_url = pg_url

    def _pg_backends(self) -> list[int]:
        if not self.pg_url:
            return []
        import psycopg

        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return [row[0] for row in rows]

    def sample(self) -> dict[int, tuple[str, float]]:
        out = {}
        for pid, role in process_tree(self.root_pid).items():
            stat = _stat(pid)
            if stat:
                out[pid] = (role, stat[1])
        for pid in self._pg_backends():
            stat = _stat(pid)
            if stat:
                out[pid] = ("db", stat[1])
        return out

    @staticmethod
    def delta(before: dict, after: dict) -> Counter:
        used: Counter = Counter()
        for pid, (role, cpu) in after.items():
            used[role] += cpu - before.get(pid, (role, 0.0))[1]
        return used


def settle(meter: CpuMeter, *, quiet_share: float = 0.15, timeout: float = 120.0) -> None:
    """Wait until the server is idle (make run's worker classifies the demo's pictures at start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = meter.sample()
        time.sleep(2.0)
        if sum(CpuMeter.delta(before, meter.sample()).values()) < 2.0 * quiet_share:
            return


def self_cpu() -> float:
    usage = os.times()
    return usage.user + usage.system


# --------------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------------
def _wait_http(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/me/")
            status = conn.getresponse().status
            conn.close()
            if status in (401, 403):
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"no server on port {port} after {timeout:.0f} s")


def server_env(setup: str, var_dir: str, db_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env["SPOTCHECK_VAR_DIR"] = var_dir
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if setup == "production":
        env.update(
            DATABASE_URL=db_url,
            REDIS_URL=redis_url,
            DEBUG="0",
            SECRET_KEY="bench-only-" + uuid.uuid4().hex,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="0",
            CACHE_KEY_PREFIX=f"bench-{os.getpid()}",
        )
    return env


def start_server(*, setup: str, port: int, env: dict, profile_out: str | None) -> subprocess.Popen:
    """Start the setup's server as its users start it (own session: the whole group is stopped after)."""
    if profile_out or setup == "production":  # make run migrates by itself
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    if profile_out:
        env = {**env, "BENCH_PROFILE_OUT": profile_out}
        cmd = [PYTHON, "-m", "gunicorn", "config.wsgi", "-c", str(ROOT / "bench" / "gunicorn_profile.py")]
        cmd += ["-b", f"127.0.0.1:{port}", "-w", "1", "--threads", "1", "--worker-class", "sync"]
    elif setup == "embedded":
        cmd = ["make", "--no-print-directory", "run", f"ADDR=127.0.0.1:{port}"]
    else:
        # docs/deploy.md's web command, on our port.
        cmd = [PYTHON, "-m", "gunicorn", "config.wsgi", "--worker-class", "gthread", "-w", str(os.cpu_count() or 1)]
        cmd += ["--threads", "4", "--keep-alive", "30", "-b", f"127.0.0.1:{port}", "--timeout", "30"]
    log = open(Path(env["SPOTCHECK_VAR_DIR"]) / "server.log", "w")  # noqa: SIM115 (closed with the server)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _wait_http(port, proc)
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --------------------------------------------------------------------------------------------------------
# Data (through the ORM, in this process, on the server's database)
# --------------------------------------------------------------------------------------------------------
def setup_django(env: dict) -> None:
    for key in ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "SPOTCHECK_VAR_DIR", "CACHE_KEY_PREFIX"):
        if key in env:
            os.environ[key] = env[key]
        else:
            os.environ.pop(key, None)
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "bench-only-" + uuid.uuid4().hex)
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def seed_labelers(n: int) -> list[tuple[int, str]]:
    """n users with the labeler role and an API token each: (user id, token)."""
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from core.roles import Role

    group, _ = Group.objects.get_or_create(name=Role.LABELER)
    out = []
    for i in range(n):
        user, _ = User.objects.get_or_create(username=f"bench-labeler-{i}")
        user.groups.add(group)
        token, _ = Token.objects.get_or_create(user=user)
        out.append((user.pk, token.key))
    return out


def seed_campaign(*, n_items: int, n_gold: int, rng: random.Random) -> tuple[int, dict[int, str]]:
    """A fresh active campaign (the others deactivated) and each item's hidden truth."""
    from django.db import connection

    from classification.models import Image
    from labeling.models import Campaign, Item

    Campaign.objects.filter(active=True).update(active=False)
    campaign = Campaign.objects.create(name=f"bench {uuid.uuid4().hex[:8]}", attribute="image_type", gold_rate=0.05)
    images = Image.objects.bulk_create(
        [
            Image(sha256=uuid.uuid4().hex + uuid.uuid4().hex, width=800, height=600, thumbnail=f"bench/{i}.jpg")
            for i in range(n_items + n_gold)
        ]
    )
    items = Item.objects.bulk_create(
        [Item(campaign=campaign, image=img) for img in images[:n_items]]
        + [Item(campaign=campaign, image=img, is_gold=True, gold_label="Stock") for img in images[n_items:]]
    )
    truth = {item.pk: item.gold_label or rng.choices(LABELS, weights=[6, 3, 1])[0] for item in items}
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return campaign.pk, truth


def check_round(*, campaign_id: int, acknowledged: set[str]) -> dict[str, int]:
    """The correctness counts of one round, read from the database."""
    from django.db.models import Count, F, Q

    from labeling.models import Campaign, Item, LabelerStanding, Vote

    campaign = Campaign.objects.get(pk=campaign_id)
    votes = Vote.objects.live().filter(item__campaign_id=campaign_id)
    twice = votes.values("item_id", "user_id").annotate(n=Count("id")).filter(n__gt=1).count()
    stored = set(
        str(u) for u in Vote.objects.filter(item__campaign_id=campaign_id).values_list("client_uuid", flat=True)
    )
    # make run's worker flags labelers by gold (the quality sweep): their votes are kept, not counted, and the
    # items they voted on re-tallied without them, so the tally is held to the votes of unflagged labelers.
    counted = Q(votes__undone_at__isnull=True) & (
        Q(votes__user__labeling_standing__isnull=True) | Q(votes__user__labeling_standing__flagged_at__isnull=True)
    )
    real = Item.objects.filter(campaign_id=campaign_id, is_gold=False).annotate(live=Count("votes", filter=counted))
    over = real.filter(Q(live__gt=campaign.max_votes) | ~Q(live=F("vote_count"))).count()
    return {
        "duplicates": twice,
        "over_cap": over,
        "missing": len(acknowledged - stored),
        "decided": real.filter(status="decided").count(),
        "conflict": real.filter(status="conflict").count(),
        "flagged": LabelerStanding.objects.filter(flagged_at__isnull=False).count(),
    }


# --------------------------------------------------------------------------------------------------------
# Labelers
# --------------------------------------------------------------------------------------------------------
class Round:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls: dict[str, list[float]] = {"next": [], "vote": [], "batch": []}
        self.status: Counter = Counter()  # (kind, status) of every call
        self.codes: Counter = Counter()  # error codes of refused answers
        self.conn_errors = 0
        self.counted = 0  # answers recorded (201, or "created" in a batch)
        self.replays = 0
        self.acknowledged: set[str] = set()
        self.measuring = False

    def add(self, kind: str, ms: float, status: int) -> None:
        with self.lock:
            if self.measuring:
                self.calls[kind].append(ms)
                self.status[(kind, status)] += 1


class Labeler(threading.Thread):
    def __init__(self, *, port, token, campaign_id, truth, shape, think_ms, rnd: Round, stop, seed):
        super().__init__(daemon=True)
        self.port, self.campaign_id, self.truth = port, campaign_id, truth
        self.shape, self.think_s, self.rnd, self.stop = shape, think_ms / 1000, rnd, stop
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.rng = random.Random(seed)
        self.accuracy = self.rng.uniform(0.75, 0.95)
        self.conn = None
        self.held: list[int] = []
        self.seen: list[int] = []
        self.queue: list[dict] = []

    def call(self, kind: str, path: str, body: dict) -> tuple[int, dict | None]:
        payload = json.dumps(body)
        for _attempt in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", path, payload, self.headers)
                response = self.conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                with self.rnd.lock:
                    if self.rnd.measuring:
                        self.rnd.conn_errors += 1
                self.conn.close()
                self.conn = None
                continue  # the phone re-sends the same body (same UUIDs): idempotent
            self.rnd.add(kind, (time.perf_counter() - t0) * 1000, response.status)
            if response.getheader("Connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            return response.status, json.loads(data) if data else None
        return 0, None

    def answer_for(self, item_id: int) -> str:
        if self.rng.random() < 0.04:
            return "cant_tell"
        truth = self.truth.get(item_id, "Dealer")
        return truth if self.rng.random() < self.accuracy else self.rng.choice(LABELS)

    def lease(self, count: int) -> None:
        status, data = self.call(
            "next", f"/api/v1/campaigns/{self.campaign_id}/next/", {"count": count, "exclude": self.seen[-200:]}
        )
        if status == 200:
            for item in data["items"]:
                if item["id"] not in self.seen:
                    self.seen.append(item["id"])
                    self.held.append(item["id"])

    def acknowledge(self, entry: dict, status: int, body: dict | None) -> None:
        with self.rnd.lock:
            if status in (200, 201):
                self.rnd.acknowledged.add(entry["client_uuid"])
            if not self.rnd.measuring:
                return
            if status == 201:
                self.rnd.counted += 1
            elif status == 200:
                self.rnd.replays += 1
            else:
                self.rnd.codes[(body or {}).get("error", {}).get("code", str(status))] += 1

    def vote(self, entry: dict) -> None:
        status, body = self.call("vote", "/api/v1/votes/", entry)
        self.acknowledge(entry, status, body)
        if status == 201 and self.rng.random() < 0.02:  # a re-sent answer (lost response): must count once
            status, body = self.call("vote", "/api/v1/votes/", entry)
            self.acknowledge(entry, status, body)

    def upload(self) -> None:
        status, body = self.call("batch", "/api/v1/votes/batch/", {"votes": self.queue})
        if status == 200:
            for entry, result in zip(self.queue, body["results"], strict=True):
                code = result["status"]
                self.acknowledge(entry, code, result)
        self.queue = []

    def think(self) -> None:
        if self.think_s:
            self.stop.wait(self.rng.expovariate(1 / self.think_s))

    def run(self) -> None:
        if self.think_s:
            self.stop.wait(self.rng.uniform(0, self.think_s))
        while not self.stop.is_set():
            if self.shape == "cycle":
                self.lease(1)
            elif len(self.held) <= PHONE_AHEAD + 1:
                if self.queue:
                    self.upload()
                self.lease(PHONE_BATCH - len(self.held))
            if not self.held:
                self.stop.wait(0.05)
                continue
            item_id = self.held.pop(0)
            self.think()
            if self.stop.is_set():
                break
            entry = {"item": item_id, "label": self.answer_for(item_id), "client_uuid": str(uuid.uuid4())}
            entry["ms_to_answer"] = 700
            if self.shape == "batch":
                self.queue.append(entry)
            else:
                self.vote(entry)
        if self.queue:
            self.upload()
        if self.conn is not None:
            self.conn.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def run_round(*, port, tokens, n, shape, think_ms, seconds, meter: CpuMeter, rng) -> dict:
    from django.db import connection

    expected = 600 * seconds if think_ms == 0 else 400 * seconds
    campaign_id, truth = seed_campaign(n_items=max(1500, expected // 4), n_gold=100, rng=rng)
    connection.close()
    rnd, stop = Round(), threading.Event()
    threads = [
        Labeler(
            port=port,
            token=tokens[i][1],
            campaign_id=campaign_id,
            truth=truth,
            shape=shape,
            think_ms=think_ms,
            rnd=rnd,
            stop=stop,
            seed=rng.randrange(2**32),
        )
        for i in range(n)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # connections opened, first leases taken: the window measures the steady state
    cpu0, me0, t0 = meter.sample(), self_cpu(), time.perf_counter()
    with rnd.lock:
        rnd.measuring = True
    time.sleep(seconds)
    with rnd.lock:
        rnd.measuring = False
    cpu1, me1, elapsed = meter.sample(), self_cpu(), time.perf_counter() - t0
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    load = os.getloadavg()[0]
    checks = check_round(campaign_id=campaign_id, acknowledged=rnd.acknowledged)
    connection.close()
    used = CpuMeter.delta(cpu0, cpu1)
    return {
        "n": n,
        "shape": shape,
        "think_ms": think_ms,
        "seconds": elapsed,
        "votes_per_s": rnd.counted / elapsed,
        "counted": rnd.counted,
        "replays": rnd.replays,
        "p": {k: (pct(v, 50), pct(v, 95), pct(v, 99), len(v)) for k, v in rnd.calls.items() if v},
        "cpu": dict(used),
        "client_cpu_s": me1 - me0,
        "status": rnd.status,
        "codes": rnd.codes,
        "conn_errors": rnd.conn_errors,
        "load": load,
        **checks,
    }


# --------------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------------
def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(setup: str, r: dict) -> None:
    n, per_vote = r["n"], max(r["counted"], 1)
    web = r["cpu"].get("web", 0.0) + r["cpu"].get("other", 0.0)
    db = r["cpu"].get("db", 0.0)
    cpu_ms = (web + db) * 1000 / per_vote
    print(
        f"\n[{setup}] {n} labelers, shape {r['shape']}, think {r['think_ms']:.0f} ms, "
        f"{r['seconds']:.1f} s, load {r['load']:.2f}"
    )
    floor = TARGET_VOTES.get(n)
    line = f"  votes/s {r['votes_per_s']:8.1f}"
    if r["think_ms"] == 0 and floor:
        line += f"   (target >= {floor:.0f}: {mark(r['votes_per_s'] >= floor)})"
    if setup == "production" and n == 50 and r["think_ms"] > 0:
        line += (
            f"   (target >= {TARGET_VOTES_PRODUCTION_50:.0f}: {mark(r['votes_per_s'] >= TARGET_VOTES_PRODUCTION_50)})"
        )
    print(line + f"   counted {r['counted']}, replays answered 200: {r['replays']}")
    for kind, (p50, p95, p99, count) in r["p"].items():
        target = None
        if r["think_ms"] > 0 and kind in ("next", "vote"):
            if setup == "embedded":
                target = TARGET_P95_EMBEDDED.get(n)
            elif n == 50:
                target = TARGET_P95_PRODUCTION_50
        text = f"  {kind:5s} p50 {p50:7.1f}  p95 {p95:7.1f}  p99 {p99:7.1f} ms  ({count} calls)"
        if target:
            text += f"   (p95 target <= {target:.0f}: {mark(p95 <= target)})"
        print(text)
    per_cycle = "per answer" if r["shape"] != "cycle" else "per next+vote cycle"
    print(
        f"  server CPU {per_cycle}: {cpu_ms:6.2f} ms (web {web * 1000 / per_vote:.2f} + database "
        f"{db * 1000 / per_vote:.2f}; target <= {TARGET_CPU_MS:.0f}: {mark(cpu_ms <= TARGET_CPU_MS)})"
        f"   worker/beat {r['cpu'].get('worker', 0.0):.2f} s, client {r['client_cpu_s']:.1f} s over the window"
    )
    statuses = ", ".join(f"{kind} {status}: {count}" for (kind, status), count in sorted(r["status"].items()))
    print(f"  statuses: {statuses}")
    refused = ", ".join(f"{code}: {count}" for code, count in sorted(r["codes"].items())) or "none"
    print(f"  answers refused: {refused}")
    errors = r["conn_errors"] + sum(c for (_k, s), c in r["status"].items() if s >= 500)
    print(
        f"  connection errors {r['conn_errors']}, 5xx {errors - r['conn_errors']}, duplicates {r['duplicates']}, "
        f"over cap {r['over_cap']}, answered but missing {r['missing']} (targets 0: "
        f"{mark(errors == 0 and r['duplicates'] == 0 and r['over_cap'] == 0 and r['missing'] == 0)})"
        f"   items decided {r['decided']}, conflicts {r['conflict']}, labelers flagged by gold {r['flagged']}"
    )


def summary(setup: str, results: list[dict]) -> None:
    print(f"\n[{setup}] summary (votes/s; p95 next / vote ms; server CPU ms per answer; errors)")
    print(
        "| labelers | shape | think ms | votes/s | next p95 | vote/batch p95 | CPU ms/answer | errors "
        "| dup/over/missing |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        per = max(r["counted"], 1)
        cpu = (r["cpu"].get("web", 0) + r["cpu"].get("other", 0) + r["cpu"].get("db", 0)) * 1000 / per
        p = r["p"]
        nxt = f"{p['next'][1]:.0f}" if "next" in p else "-"
        vote = f"{(p.get('vote') or p.get('batch'))[1]:.0f}" if ("vote" in p or "batch" in p) else "-"
        errors = r["conn_errors"] + sum(c for (_k, s), c in r["status"].items() if s >= 500)
        print(
            f"| {r['n']} | {r['shape']} | {r['think_ms']:.0f} | {r['votes_per_s']:.1f} | {nxt} | {vote} | {cpu:.2f} "
            f"| {errors} | {r['duplicates']}/{r['over_cap']}/{r['missing']} |"
        )


# --------------------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------------------
LAYERS = [
    ("database driver", ("sqlite3", "psycopg", "/django/db/backends/")),
    ("ORM (query building)", ("/django/db/models/", "/django/db/")),
    ("authentication + roles", ("rest_framework/authentication", "authtoken", "/core/roles", "/django/contrib/auth")),
    ("labeling (services, assignment)", ("/labeling/",)),
    ("API dispatch (DRF, core/api_hot, parsing)", ("rest_framework/", "/core/api_hot", "/core/json_input")),
    ("logging", ("/logging/", "/core/logging", "core/middleware")),
    ("json", ("/json/",)),
    ("Django request/response, middleware", ("/django/",)),
    ("gunicorn (HTTP server)", ("gunicorn",)),
]


def layer_of(filename: str) -> str:
    for name, needles in LAYERS:
        if any(needle in filename for needle in needles):
            return name
    return "other (stdlib, builtins)"


def profile_report(path: str) -> None:
    import pstats

    stats = pstats.Stats(path)
    by_layer: Counter = Counter()
    requests = 0
    for (filename, _line, func), (_cc, calls, tottime, _ct, _callers) in stats.stats.items():
        by_layer[layer_of(filename)] += tottime
        if func == "__call__" and filename.endswith("django/core/handlers/wsgi.py"):
            requests = calls  # every request the server profiled, the round's warm-up and wind-down included
    total = sum(by_layer.values())
    print(f"\nwhere a request's time goes (cProfile in the server, {requests} requests, own time by layer):")
    for layer, seconds in by_layer.most_common():
        print(f"  {layer:38s} {seconds * 1000 / max(requests, 1):6.2f} ms/request  {100 * seconds / total:5.1f} %")
    print("\ntop functions by own time:")
    stats.sort_stats("tottime").print_stats(15)
    print("\ntop functions by cumulative time:")
    stats.sort_stats("cumulative").print_stats(40)


# --------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setup", choices=["embedded", "production", "both"], default="both")
    parser.add_argument("--labelers", default="1,5,20,50")
    parser.add_argument("--phase", choices=["saturated", "paced", "all"], default="all")
    parser.add_argument("--shape", choices=["cycle", "phone", "batch", "all"], default="all")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--think-ms", type=float, default=150.0)
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the setup's folder (server log) afterwards")
    args = parser.parse_args()

    if args.setup == "both":
        code = 0
        for offset, setup in enumerate(("embedded", "production")):
            cmd = [PYTHON, __file__, "--setup", setup, "--port", str(args.port + offset)]
            cmd += ["--labelers", args.labelers, "--phase", args.phase, "--shape", args.shape]
            cmd += ["--seconds", str(args.seconds), "--think-ms", str(args.think_ms)]
            cmd += ["--profile"] if args.profile else []
            code |= subprocess.call(cmd)
        raise SystemExit(code)

    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    var_dir = tempfile.mkdtemp(prefix=f"spotcheck-http-{args.setup}-")
    env = server_env(args.setup, var_dir, db_url, redis_url)
    if args.setup == "production":
        _recreate_database(db_url)
    print(
        f"setup {args.setup}: {'make run (SQLite, embedded)' if args.setup == 'embedded' else 'gunicorn gthread, '}"
        f"{'' if args.setup == 'embedded' else 'PostgreSQL ' + urlsplit(db_url).path[1:] + ', Redis ' + redis_url}"
        f"; port {args.port}; uptime load {os.getloadavg()}; {os.cpu_count()} CPUs"
    )
    profile_out = str(Path(var_dir) / "server.prof") if args.profile else None
    proc = start_server(setup=args.setup, port=args.port, env=env, profile_out=profile_out)
    try:
        setup_django(env)
        rng = random.Random(14)
        counts = [int(x) for x in args.labelers.split(",")]
        tokens = seed_labelers(max(counts))
        meter = CpuMeter(root_pid=proc.pid, pg_url=db_url if args.setup == "production" else None)
        settle(meter)
        if args.profile:
            result = run_round(
                port=args.port,
                tokens=tokens,
                n=5,
                shape="cycle",
                think_ms=0,
                seconds=args.seconds,
                meter=meter,
                rng=rng,
            )
            report(args.setup, result)
            stop_server(proc)
            profile_report(profile_out)
            return
        phases = {"saturated": [0.0], "paced": [args.think_ms], "all": [0.0, args.think_ms]}[args.phase]
        shapes = ["cycle", "phone", "batch"] if args.shape == "all" else [args.shape]
        results = []
        for think in phases:
            for n in counts:
                for shape in shapes:
                    if args.shape == "all" and shape != "cycle" and n < 20:
                        continue  # the phone's shapes are compared where the load is
                    if args.setup == "production":
                        _autovacuum_stand_in(db_url)
                    results.append(
                        run_round(
                            port=args.port,
                            tokens=tokens,
                            n=n,
                            shape=shape,
                            think_ms=think,
                            seconds=args.seconds,
                            meter=meter,
                            rng=rng,
                        )
                    )
                    report(args.setup, results[-1])
        summary(args.setup, results)
        print(f"uptime load at the end: {os.getloadavg()}")
    finally:
        stop_server(proc)
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)
        else:
            print(f"kept {var_dir}")


def _autovacuum_stand_in(url: str) -> None:
    """Between rounds, what autovacuum would have done meanwhile, when this PostgreSQL server has it off (CI
    machines turn it off): each answer inserts and deletes a lease, and a production server vacuums that
    table after every 1,000 dead rows (labeling migration 0004). Outside the measured window."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SHOW autovacuum").fetchone()[0] == "off":
            conn.execute("VACUUM (ANALYZE) labeling_lease, labeling_item, labeling_vote")


def _recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    main()
