"""Real processes for the fault suite and bench/faults.py: a private PostgreSQL and Redis, gunicorn, Celery
workers and beat, a picture server; and the three faults run against them through the HTTP API.

Everything listens on 127.0.0.1 on four ports from FAULTS_PORT_BASE (8421-8424 by default) and lives under
one temporary directory; nothing touches the shared PostgreSQL (5432) or Redis (6379). Each fault returns a
``FaultResult`` with the recovery time and the counts (acknowledged vs stored, duplicates, 5xx other than 503).
"""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BIN = Path(PYTHON).parent
PG_BIN = next((p for p in ("/usr/lib/postgresql/15/bin", "/usr/local/bin") if Path(p, "pg_ctl").exists()), "")
# Four consecutive ports from FAULTS_PORT_BASE (default 8421), so runs sharing a machine can each take their own.
_BASE = int(os.environ.get("FAULTS_PORT_BASE", "8421"))
PORTS = {"postgres": _BASE, "redis": _BASE + 1, "web": _BASE + 2, "pictures": _BASE + 3}
RECOVERY_TARGET = 120.0  # seconds


def available() -> str | None:
    """Why the fault suite cannot run here (None when it can)."""
    if not shutil.which("redis-server"):
        return "needs redis-server"
    if not PG_BIN or not shutil.which("runuser"):
        return "needs PostgreSQL's initdb/pg_ctl and runuser"
    if os.geteuid() != 0:
        return "needs root to run PostgreSQL as the postgres user"
    for port in PORTS.values():
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return f"port {port} is taken"
    return None


def wait_until(condition, *, timeout: float, interval: float = 0.2) -> float | None:
    """Poll ``condition`` until true; the seconds it took, or None at the timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if condition():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - a service still coming back counts as "not yet"
            pass
        time.sleep(interval)
    return None


# --- pictures -------------------------------------------------------------------------------------------


class PictureServer:
    """Serves distinct small JPEGs at /<n>.jpg, each after ``delay`` seconds (a slow CDN)."""

    def __init__(self, port: int):
        from PIL import Image

        self.delay = 0.0
        cache: dict[int, bytes] = {}

        def jpeg(n: int) -> bytes:
            if n not in cache:
                buffer = io.BytesIO()
                Image.new("RGB", (96, 64), ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256)).save(buffer, "JPEG")
                cache[n] = buffer.getvalue()
            return cache[n]

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                time.sleep(server.delay)
                name = self.path.strip("/").removesuffix(".jpg")
                if not name.isdigit():
                    self.send_error(404)
                    return
                body = jpeg(int(name))
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a fetch worker killed mid-download (the fault itself), not the server's failure

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{port}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the stack ------------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: dict = field(default_factory=dict)


class Stack:
    """PostgreSQL, Redis, gunicorn, workers (fetch, default+classify) and beat, started in ``start()``."""

    def __init__(self, *, env: dict[str, str] | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="spotcheck-faults-"))
        os.chmod(self.dir, 0o755)
        self.pg_data = self.dir / "pg"
        self.procs: dict[str, subprocess.Popen] = {}
        self.pictures = PictureServer(PORTS["pictures"])
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SPOTCHECK_", "CELERY_"))},
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{PORTS['postgres']}/spotcheck",
            "REDIS_URL": f"redis://127.0.0.1:{PORTS['redis']}/0",
            "SPOTCHECK_VAR_DIR": str(self.dir / "var"),
            "SPOTCHECK_FETCH_ALLOW": f"127.0.0.1:{PORTS['pictures']}",
            "LOG_LEVEL": "WARNING",
            "DB_CONN_MAX_AGE": "60",
            "SPOTCHECK_SITEMAP_CHUNK": "10",  # several chunks per scrape, so a kill lands in the middle of one
            **(env or {}),
        }
        self.tokens: dict[str, str] = {}

    # processes
    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process's life
        proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "-D", str(self.pg_data), *args],
            capture_output=True, text=True, check=check,
        )  # fmt: skip

    def postgres_start(self) -> None:
        if not self.pg_data.exists():
            self.pg_data.mkdir()
            shutil.chown(self.pg_data, "postgres", "postgres")
            subprocess.run(
                ["runuser", "-u", "postgres", "--", f"{PG_BIN}/initdb", "-D", str(self.pg_data), "-A", "trust",
                 "-U", "postgres", "--no-sync"],
                capture_output=True, check=True,
            )  # fmt: skip
        options = f"-p {PORTS['postgres']} -k {self.pg_data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("-o", options, "-l", str(self.pg_data / "server.log"), "-w", "start")

    def postgres_restart(self) -> None:
        self._pg("-m", "fast", "-w", "stop")
        self.postgres_start()

    def redis_start(self) -> None:
        self._spawn(
            "redis",
            ["redis-server", "--port", str(PORTS["redis"]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        )
        wait_until(lambda: self._redis_ping(), timeout=10)

    def _redis_ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", PORTS["redis"]), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def redis_kill(self) -> None:
        self.kill("redis")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)  # the whole process group: a prefork worker's children go with it
            proc.wait(timeout=30)

    def manage(self, *args: str, code: str | None = None) -> str:
        command = [PYTHON, "manage.py", *args] if code is None else [PYTHON, "manage.py", "shell", "-c", code]
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args or 'shell'} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def worker_start(self, name: str, queues: str, pool: str = "prefork", concurrency: int = 2) -> None:
        self._spawn(
            name,
            [str(BIN / "celery"), "-A", "config", "worker", "-Q", queues, "--pool", pool, "-c", str(concurrency),
             "-n", f"{name}@%h", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
        )  # fmt: skip

    def start(self) -> Stack:
        try:
            return self._start()
        except BaseException:
            self.logs_print()
            self.stop()
            raise

    def logs_print(self) -> None:
        """The tail of every process's log, on stderr (for a fault that did not hold)."""
        for log in sorted(self.dir.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-25:]
            print(f"--- {log.name}\n" + "\n".join(lines), file=sys.stderr)

    def _start(self) -> Stack:
        self.postgres_start()
        import psycopg

        admin = f"postgresql://postgres@127.0.0.1:{PORTS['postgres']}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE spotcheck")
        self.redis_start()
        self.manage("migrate", "--noinput")
        self.tokens = json.loads(self.manage(code=_SETUP).strip().splitlines()[-1])
        self._spawn(
            "web",
            [str(BIN / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{PORTS['web']}", "-w", "2", "--threads", "12",
             "--timeout", "60", "--graceful-timeout", "5"],
        )  # fmt: skip
        self.worker_start("fetch", "fetch")
        self.worker_start("default", "default,classify")
        self._spawn("beat", [str(BIN / "celery"), "-A", "config", "beat", "--loglevel", "WARNING",
                             "-s", str(self.dir / "beat-schedule")])  # fmt: skip
        if wait_until(lambda: self.get("/healthz").status == 200, timeout=60) is None:
            raise RuntimeError(f"the web server did not come up; see {self.dir}/web.log")
        return self

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM if name == "web" else signal.SIGKILL)
        self._pg("-m", "immediate", "stop", check=False)
        self.pictures.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # HTTP and SQL
    def request(self, method: str, path: str, body: dict | None = None, *, token: str = "", timeout: float = 30):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{PORTS['web']}{path}", data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                raw = answer.read()
                return Response(answer.status, json.loads(raw) if raw[:1] in (b"{", b"[") else {})
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return Response(exc.code, json.loads(raw))
            except ValueError:
                return Response(exc.code, {"raw": raw[:200].decode(errors="replace")})
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return Response(0)  # no answer at all (the client would retry)

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: dict, **kwargs) -> Response:
        return self.request("POST", path, body, **kwargs)

    def sql(self, query: str, *params):
        import psycopg

        url = self.env["DATABASE_URL"].replace("postgres://", "postgresql://")
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def scrape(self, slug: str, first: int, count: int, per_vehicle: int = 2) -> Response:
        vehicles = [
            {
                "external_id": f"V{first + i}",
                "title": f"Car {first + i}",
                "images": [f"{self.pictures.base}/{(first + i) * 10 + p}.jpg" for p in range(per_vehicle)],
            }
            for i in range(count)
        ]
        return self.post(f"/api/v1/advertisers/{slug}/scrapes/", {"vehicles": vehicles}, token=self.tokens["scraper"])

    def scrape_state(self, scrape_id: int) -> tuple[str, int, int, int]:
        ((status, done, failed, total),) = self.sql(
            "SELECT status, done, failed, total FROM advertiser_sitemaps_scrape WHERE id = %s", scrape_id
        )
        return status, done, failed, total


# Users: a staff scraper token (reviewer + service), 20 labelers; a campaign of pictures to vote on.
_SETUP = """
import json, io
from PIL import Image as P
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token
from classification.models import Image
from labeling.models import Campaign, Item
tokens = {}
scraper = User.objects.create_user("scraper")
scraper.groups.add(Group.objects.get(name="reviewer"), Group.objects.get(name="service"))
tokens["scraper"] = Token.objects.create(user=scraper).key
labelers = Group.objects.get(name="labeler")
for i in range(20):
    user = User.objects.create_user(f"labeler{i}")
    user.groups.add(labelers)
    tokens[f"labeler{i}"] = Token.objects.create(user=user).key
campaign = Campaign.objects.create(name="faults", attribute="image_type", votes_required=3, max_votes=5)
# Enough work that 20 fast labelers never run out before the fault and its recovery (400 items, 1,200 votes,
# were all answered within the first 10 s once the hot path got cheaper: no vote was left to follow a restart).
images = Image.objects.bulk_create(
    Image(sha256=f"{n:064x}", width=8, height=8, format="JPEG") for n in range(5000)
)
Item.objects.bulk_create(Item(campaign=campaign, image=image) for image in images)
tokens["campaign"] = campaign.pk
print(json.dumps(tokens))
"""


# --- the faults -----------------------------------------------------------------------------------------


@dataclass
class FaultResult:
    name: str
    recovery_seconds: float | None
    acknowledged: int
    stored: int
    lost: int
    duplicated: int
    server_errors: int  # 5xx other than 503
    unavailable: int  # 503 answers (allowed)
    notes: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.recovery_seconds is not None
            and self.recovery_seconds <= RECOVERY_TARGET
            and self.lost == 0
            and self.duplicated == 0
            and self.server_errors == 0
        )


def _wait_scrape_done(stack: Stack, scrape_id: int, timeout: float) -> float | None:
    return wait_until(lambda: stack.scrape_state(scrape_id)[0] in ("done", "failed"), timeout=timeout, interval=0.5)


def redis_down_during_fixes_and_scrapes(stack: Stack, *, fixes: int = 20, timeout: float = 240) -> FaultResult:
    """Redis (broker and cache) killed; fixes and a scrape posted meanwhile; Redis back: everything arrives."""
    first = stack.scrape("acme", 0, fixes // 2)
    assert first.status == 202, first
    assert _wait_scrape_done(stack, first.body["id"], 120) is not None, "the setup scrape did not finish"
    pictures = [row[0] for row in stack.sql("SELECT id FROM advertiser_sitemaps_vehicleimage ORDER BY id")][:fixes]
    stack.redis_kill()
    statuses = []
    for n, picture in enumerate(pictures):
        answer = stack.post(
            "/api/v1/fixes/", {"vehicle_image": picture, "image_type": ("Stock", "Dealer")[n % 2]},
            token=stack.tokens["scraper"],
        )  # fmt: skip
        statuses.append(answer.status)
    during = stack.scrape("acme", 1000, 5)
    statuses.append(during.status)
    acknowledged_fixes = sum(1 for s in statuses[:-1] if s in (200, 201))
    stack.redis_start()
    back = time.monotonic()

    def arrived() -> bool:
        (undelivered,) = stack.sql("SELECT count(*) FROM advertiser_sitemaps_fixoutbox WHERE delivered_at IS NULL")[0]
        (queued,) = stack.sql("SELECT count(*) FROM core_taskoutbox")[0]
        scrape_over = during.status != 202 or stack.scrape_state(during.body["id"])[0] in ("done", "failed")
        return undelivered == 0 and queued == 0 and scrape_over

    recovered = wait_until(arrived, timeout=timeout, interval=0.5)
    stored_fixes = stack.sql("SELECT count(*) FROM advertiser_sitemaps_manualfix")[0][0]
    scrape = stack.scrape_state(during.body["id"]) if during.status == 202 else ("refused", 0, 0, 0)
    status, done, failed, total = scrape
    return FaultResult(
        name="redis stopped during fixes and a scrape",
        recovery_seconds=None if recovered is None else time.monotonic() - back,
        acknowledged=acknowledged_fixes + (1 if during.status == 202 else 0),
        stored=stored_fixes + (1 if status in ("done", "failed") else 0),
        lost=max(0, acknowledged_fixes - stored_fixes) + (0 if status in ("done", "failed") else 1),
        duplicated=max(0, stored_fixes - acknowledged_fixes) + max(0, done + failed - total),
        server_errors=sum(1 for s in statuses if s >= 500 and s != 503),
        unavailable=statuses.count(503),
        notes=f"fix answers {sorted(set(statuses[:-1]))}, scrape answer {during.status}, scrape {status} "
        f"{done}+{failed}/{total}",
    )


def worker_killed_mid_chunk(stack: Stack, *, vehicles: int = 30, timeout: float = 240) -> FaultResult:
    """The fetch worker SIGKILLed (with its children) while it classifies a scrape; a new one started at once,
    as a supervisor would: the run finishes by itself, every picture counted once."""
    stack.pictures.delay = 2.0  # a slow CDN: each chunk of 10 takes ~2 s, two run at once
    try:
        answer = stack.scrape("killed", 5000, vehicles)
        assert answer.status == 202, answer
        scrape_id = answer.body["id"]
        wait_until(lambda: stack.scrape_state(scrape_id)[1] > 0, timeout=120, interval=0.05)
        counted_at_kill = stack.scrape_state(scrape_id)[1]
        stack.kill("fetch")
        killed = time.monotonic()
        stack.worker_start("fetch", "fetch")
        recovered = _wait_scrape_done(stack, scrape_id, timeout)
    finally:
        stack.pictures.delay = 0.0
    status, done, failed, total = stack.scrape_state(scrape_id)
    pending = stack.sql(
        "SELECT count(*) FROM advertiser_sitemaps_vehicleimage WHERE scrape_id = %s AND status = 'pending'", scrape_id
    )[0][0]
    return FaultResult(
        name="fetch worker SIGKILLed mid-chunk",
        recovery_seconds=None if recovered is None else time.monotonic() - killed,
        acknowledged=total,
        stored=done + failed,
        lost=pending + max(0, total - done - failed),
        duplicated=max(0, done + failed - total),
        server_errors=0 if answer.status < 500 else 1,
        unavailable=0,
        notes=f"killed with {counted_at_kill} of {total} counted; scrape {status}: {done} done + {failed} failed",
    )


def postgres_restarted_under_voting(stack: Stack, *, threads: int = 20, seconds: float = 20) -> FaultResult:
    """20 labelers vote through the API (retrying a failed vote with its client_uuid, as the phone does) while
    PostgreSQL restarts: every acknowledged vote is stored once; the only 5xx is 503."""
    campaign = stack.tokens["campaign"]
    stop = threading.Event()
    statuses: list[int] = []
    acknowledged: set[str] = set()
    successes: list[float] = []  # when each vote was acknowledged
    lock = threading.Lock()

    def labeler(token: str) -> None:
        while not stop.is_set():
            lease = stack.post(f"/api/v1/campaigns/{campaign}/next/", {"count": 1}, token=token, timeout=15)
            with lock:
                statuses.append(lease.status)
            if lease.status != 200 or not lease.body.get("items"):
                time.sleep(0.2)
                continue
            vote = {"item": lease.body["items"][0]["id"], "label": "Dealer", "client_uuid": str(uuid.uuid4())}
            for _attempt in range(50):  # the phone retries the same vote until it gets an answer
                answer = stack.post("/api/v1/votes/", vote, token=token, timeout=15)
                with lock:
                    statuses.append(answer.status)
                if answer.status in (200, 201):
                    with lock:
                        acknowledged.add(vote["client_uuid"])
                        successes.append(time.monotonic())
                    break
                if 400 <= answer.status < 500 and answer.status not in (408, 429):
                    break  # refused for good (decided, lease gone): not a vote to keep
                time.sleep(0.3)

    workers = [threading.Thread(target=labeler, args=(stack.tokens[f"labeler{i}"],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(seconds / 2)  # load before the fault (the scenario's duration, not a synchronisation)
    down_at = time.monotonic()
    stack.postgres_restart()  # a fast shutdown, then a start: returns once the server accepts connections
    up_at = time.monotonic()

    def first_success_after_restart() -> float | None:
        with lock:
            return next((t for t in successes if t >= up_at), None)

    wait_until(lambda: first_success_after_restart() is not None, timeout=120, interval=0.2)
    time.sleep(seconds / 2)
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    stored = {row[0] for row in stack.sql("SELECT client_uuid::text FROM labeling_vote")}
    rows = stack.sql("SELECT count(*) - count(DISTINCT client_uuid) FROM labeling_vote")[0][0]
    return FaultResult(
        name=f"postgresql restarted under {threads} voting threads",
        recovery_seconds=None if (first := first_success_after_restart()) is None else first - up_at,
        acknowledged=len(acknowledged),
        stored=len(acknowledged & stored),
        lost=len(acknowledged - stored),
        duplicated=rows,
        server_errors=sum(1 for s in statuses if s >= 500 and s != 503),
        unavailable=statuses.count(503),
        notes=f"database down {up_at - down_at:.1f} s; {len(stored - acknowledged)} stored but unanswered; "
        f"no answer {statuses.count(0)}; statuses {sorted(set(statuses))}",
    )


FAULTS = (redis_down_during_fixes_and_scrapes, worker_killed_mid_chunk, postgres_restarted_under_voting)
