"""Benchmark: scrapes end to end through the production topology, against a local picture server.

    .venv/bin/python bench/pipeline.py [--pictures 10000] [--size 4163x3330] [--changed 0.075] [--fetch-processes 1]
                                       [--rechecks 3] [--port 8200] [--classify-processes N] [--own-cores]

Starts, on 127.0.0.1 and in a dedicated PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/spotcheck_pipeline_bench, created and dropped here) and Redis database
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/3, flushed): a picture server (its own process; JPEGs of ``--size``,
each URL distinct bytes, with ETag and Last-Modified so conditional GETs are answered 304), gunicorn (config.wsgi), a
fetch worker (``-Q fetch --pool prefork -c <--fetch-processes>``, with docs/deploy.md's ``GLIBC_TUNABLES``) and a
classify worker (``-Q classify --pool prefork -c <cores>``), as docs/deploy.md runs them. Scrapes are posted to ``POST
/api/v1/advertisers/{slug}/scrapes/`` with a staff token and followed on ``GET /api/v1/scrapes/{id}/``. CPU is read from
/proc for each process tree and for the PostgreSQL backends of the bench database (Redis is shared with other work on
this machine and is not counted). A server with autovacuum off (CI machines) gets the database vacuumed and analysed
before each scrape instead, as production's autovacuum would.

Phases: the decode floor (decode at libjpeg's DCT scale + classify of the same pictures in this process,
fastest of 3 rounds, before the scrape, then the same loop in as many processes at once as the classify
worker has; the resize to the thumbnail's size, the thumbnail's encoding and the hash are the pipeline's,
not the floor's);
a first scrape of ``--pictures`` pictures (12 per car); a daily re-scrape where ``--changed`` of the cars
were replaced by new ones (seed 001: 500k cars x 12 pictures, 5-10 % change a day); a re-scrape where
nothing changed (every picture a 304: the fetch process's re-check rate; run --rechecks times, the median run
reported). The picture server counts the requests per URL; the database counts the pictures classified. Prints
figures beside their targets and the projected machine-hours per day for seed 001's inventory on machines like
this one.

``--size`` defaults to 4163x3330 because the seed (seeds/000, "Car images are huge, around 4163 x 3330
pixels") says that is what dealers publish (bench/classify.py uses the same size; ~2.3 MB at quality 85).
Run it again with ``--size 1024x768`` (~150 KB) for small pictures: decode costs differ by size, so both are
reported (docs/classification.md); at the big size keep ``--pictures`` near 2,000 for a run of ~5 minutes.
The fetch byte cap and pixel cap are the production defaults: a picture they refuse fails the run loudly.
``--own-cores`` runs the classify worker (and the floor) on cores of its own and everything else of the bench on
the others, as when stage 1, the web and the database run on other machines.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PICTURES_PER_CAR = 12
SEED_001_PICTURES = 500_000 * PICTURES_PER_CAR
BASE_PICTURES = 16  # generated once; each URL gets distinct bytes (a comment segment) on top of one of them
LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"
# The fetch worker's environment in docs/deploy.md: bodies come from malloc's heap and stay with the process.
FETCH_GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456"


# --- the picture server (child process) ------------------------------------------------------------------


def _comment(n: int) -> bytes:
    """A JPEG COM segment naming ``n``."""
    comment = f"spotcheck bench picture {n}".encode()
    return b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment


def _unique(base: bytes, n: int) -> bytes:
    """The base JPEG with a COM segment naming ``n``: distinct bytes (a new SHA-256), the same pixels."""
    return base[:2] + _comment(n) + base[2:]


def base_pictures(width: int, height: int) -> list[bytes]:
    """The generated JPEGs every served picture is made of (dealer and stock, every paint in turn)."""
    from classification.synthetic import PAINT, picture_bytes

    colours = list(PAINT)
    return [
        picture_bytes(
            kind=("dealer", "stock")[i % 2], color=colours[i % len(colours)], seed=i, width=width, height=height
        )
        for i in range(BASE_PICTURES)
    ]


def serve(port: int, bases_dir: Path) -> None:
    """Child mode: GET /p/<n>.jpg (ETag per picture, 304 when it matches), /__stats, /__reset; the base
    pictures are read from ``bases_dir`` (written by the parent, which decodes the same ones for the floor).

    It stands in for the dealers' CDNs, which spend none of our CPU, so it is kept cheap: one asyncio loop,
    HTTP/1.1 keep-alive, only the request line and ``If-None-Match`` read, a body written as its three parts
    (no copy of a seed-size picture per request)."""
    import asyncio

    bases = [(bases_dir / f"{i}.jpg").read_bytes() for i in range(BASE_PICTURES)]
    seen: dict[str, list[int]] = {}  # path → [requests, conditional requests, 304 answers]

    def head(status: str, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers), "", ""]
        return "\r\n".join(lines).encode("latin-1")

    def json_answer(payload) -> list[bytes]:
        body = json.dumps(payload).encode()
        return [head("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]), body]

    def answer(path: str, if_none_match: str | None) -> list[bytes]:
        if path == "/__stats":
            return json_answer(seen)
        if path == "/__reset":
            seen.clear()
            return json_answer({})
        try:
            n = int(path.removeprefix("/p/").removesuffix(".jpg"))
        except ValueError:
            return [head("404 Not Found", [("Content-Length", "0")])]
        etag = f'"p{n}"'
        counts = seen.setdefault(path, [0, 0, 0])
        counts[0] += 1
        counts[1] += if_none_match is not None
        counts[2] += if_none_match == etag
        validators = [("ETag", etag), ("Last-Modified", LAST_MODIFIED)]
        if if_none_match == etag:
            return [head("304 Not Modified", validators)]
        base = bases[n % BASE_PICTURES]
        segment = _comment(n)  # the bytes of _unique(base, n), in three parts
        length = len(base) + len(segment)
        headers = [("Content-Type", "image/jpeg"), ("Content-Length", str(length)), *validators]
        return [head("200 OK", headers), base[:2], segment, memoryview(base)[2:]]

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                lines = request.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                if_none_match = None
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "if-none-match":
                        if_none_match = value.strip()
                writer.writelines(answer(path, if_none_match))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", port, backlog=1024, limit=65536)
        await server.serve_forever()

    asyncio.run(main())


# --- the floor with every classify process at once (child processes) ------------------------------------


def floor_picture(data: bytes):
    """The floor's decode: libjpeg at the smallest DCT scale that keeps the thumbnail's long side (what
    ``imaging.decode`` asks of it), then RGB, and nothing more. The area resize to the thumbnail's size that
    ``imaging.decode`` adds is left out on purpose: the pipeline pays for it on top of the floor, with the
    thumbnail's JPEG encoding and the hash (printed beside the floor as "stored beside the values")."""
    from PIL import Image

    from classification.imaging import draft_size

    picture = Image.open(io.BytesIO(data))
    picture.draft("RGB", draft_size(*picture.size))
    return picture.convert("RGB")


def _floor_worker(bases_dir: str, count: int, barrier, results) -> None:
    """One process of the parallel floor: the in-process floor's decode + classify loop, started together
    with the others (after Django, the classifier and one warm-up picture are ready)."""
    import django

    django.setup()
    from classification.classifiers import classifier_for
    from classification.services import model_version_ensure_active

    bases = [(Path(bases_dir) / f"{i}.jpg").read_bytes() for i in range(BASE_PICTURES)]
    sample = [_unique(bases[n % BASE_PICTURES], n) for n in range(count)]
    classifier = classifier_for(model_version_ensure_active())
    classifier.classify(floor_picture(sample[-1]))
    barrier.wait()
    started = time.perf_counter()
    for data in sample:
        classifier.classify(floor_picture(data))
    results.put(count / (time.perf_counter() - started))


def parallel_floor(bases_dir: Path, count: int, processes: int) -> float:
    """Pictures/s of ``processes`` floor loops running at once: what these cores give together, before any
    pipeline (two processes on two vCPUs need not reach twice one)."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    children = [
        context.Process(target=_floor_worker, args=(str(bases_dir), count, barrier, results)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    rates = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join()
    return sum(rates)


# --- the topology ------------------------------------------------------------------------------------------


def autovacuum_stand_in(url: str) -> None:
    """Before each scrape, what autovacuum would have done since the last, when this PostgreSQL server has it
    off (CI machines turn it off): every run inserts a row per picture and updates it, and re-checks update
    every source; without it the planner keeps the statistics of empty tables and scans the bloat. Outside
    the measured window."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SHOW autovacuum").fetchone()[0] == "off":
            conn.execute("VACUUM (ANALYZE)")


def free_port(start: int, stop: int) -> int:
    for port in range(start, stop):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    sys.exit(f"no free port in {start}-{stop}")


def wait_http(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (alive ones read directly, reaped ones from cutime/cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / tick  # utime, stime, cutime, cstime
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        total += cpu_seconds(int(child))
    return total


def process_cpu_seconds(pid: int) -> float:
    """CPU time of one process, children not included (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu(admin_url: str, db_name: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to the bench database (same machine), by pid."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [db_name])]
    return {pid: process_cpu_seconds(pid) for pid in pids}


def api(base: str, token: str, method: str, path: str, payload=None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Token {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def inventory(picture_base: str, cars: list[int]) -> dict:
    """Cars by number; car c shows pictures c*12 … c*12+11."""
    return {
        "vehicles": [
            {
                "external_id": f"car-{c}",
                "images": [f"{picture_base}/p/{c * PICTURES_PER_CAR + i}.jpg" for i in range(PICTURES_PER_CAR)],
            }
            for c in cars
        ]
    }


def picture_size(text: str) -> tuple[int, int]:
    """``WxH`` → (width, height), both positive."""
    width, sep, height = text.lower().partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        size = (0, 0)
    if not sep or min(size) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT (e.g. 4163x3330)")
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=10_000, help="pictures in the first scrape")
    parser.add_argument(
        "--size", type=picture_size, default=(4163, 3330), help="pictures' WIDTHxHEIGHT (default: the seed's)"
    )
    parser.add_argument("--changed", type=float, default=0.075, help="share of cars replaced in the re-scrape")
    parser.add_argument("--fetch-processes", type=int, default=1, help="fetch worker processes (prefork)")
    parser.add_argument("--classify-processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--own-cores",
        action="store_true",
        help="the classify worker (and the floor) on the last --classify-processes cores, every other process of "
        "the bench on the rest (PostgreSQL and Redis are not moved): stage 2 on cores of its own",
    )
    parser.add_argument("--floor-pictures", type=int, default=60)
    parser.add_argument("--rechecks", type=int, default=3, help="re-checks run (the median is reported)")
    parser.add_argument("--port", type=int, default=8200, help="first of 100 ports tried for the two servers")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bases", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="spotcheck-bench-pipeline-")
    db_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/spotcheck_pipeline_bench")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SPOTCHECK_VAR_DIR": tmp,
        "DEBUG": "0",  # production settings; loopback fetching is allowed for the local picture server only
        "SECRET_KEY": "bench-pipeline-not-secret",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    if args.serve:
        serve(args.serve, args.bases)
        return

    parts = urlsplit(db_url)
    db_name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}"')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    import redis

    redis.Redis.from_url(redis_url).flushdb()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from classification import imaging
    from classification.classifiers import classifier_for
    from classification.models import Image
    from classification.services import model_version_ensure_active

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_superuser("bench-scraper", "bench@example.com", "not-used")
    token = Token.objects.create(user=user).key

    children: list[subprocess.Popen] = []
    logs = Path(tmp) / "logs"
    logs.mkdir()

    processes: dict[str, subprocess.Popen] = {}

    cores = os.cpu_count() or 1
    # --own-cores: the cores stage 2 runs on, and the cores of everything else; without it, all of them.
    every_core = set(range(cores))
    stage_two_cores, other_cores = every_core, every_core
    if args.own_cores:
        if args.classify_processes >= cores:
            sys.exit(f"--own-cores needs fewer classify processes than the {cores} cores")
        stage_two_cores = set(range(cores - args.classify_processes, cores))
        other_cores = every_core - stage_two_cores
    os.sched_setaffinity(0, other_cores)

    def start(
        name: str, command: list[str], extra_env: dict | None = None, on_cores: set[int] = other_cores
    ) -> subprocess.Popen:
        with open(logs / f"{name}.log", "w") as log:
            child = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.sched_setaffinity(0, on_cores),  # its worker processes inherit it
            )
        children.append(child)
        processes[name] = child
        return child

    python = sys.executable
    picture_port, web_port = free_port(args.port, args.port + 50), free_port(args.port + 50, args.port + 100)
    # The picture server only; in ``env`` (what the children get), not just this process's environment.
    env["SPOTCHECK_FETCH_ALLOW"] = os.environ["SPOTCHECK_FETCH_ALLOW"] = f"127.0.0.1:{picture_port}"
    width, height = args.size
    bases = base_pictures(width, height)
    bases_dir = Path(tmp) / "bases"
    bases_dir.mkdir()
    for i, data in enumerate(bases):
        (bases_dir / f"{i}.jpg").write_bytes(data)
    try:
        start("pictures", [python, __file__, "--serve", str(picture_port), "--bases", str(bases_dir)])
        start(
            "web",
            [python, "-m", "gunicorn", "config.wsgi", "-w", str(cores), "-b", f"127.0.0.1:{web_port}",
             "--timeout", "600", "--no-control-socket"],
        )  # fmt: skip
        start(
            "fetch",
            [python, "-m", "celery", "-A", "config", "worker", "-Q", "fetch", "--pool", "prefork",
             "-c", str(args.fetch_processes), "-n", "fetch@bench", "-l", "WARNING",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            {"GLIBC_TUNABLES": FETCH_GLIBC_TUNABLES},
        )  # fmt: skip
        start(
            "classify",
            [python, "-m", "celery", "-A", "config", "worker", "-Q", "classify", "--pool", "prefork",
             "-c", str(args.classify_processes), "--max-memory-per-child", "300000", "-n", "classify@bench",
             "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            on_cores=stage_two_cores,
        )  # fmt: skip
        pictures = f"http://127.0.0.1:{picture_port}"
        web = f"http://127.0.0.1:{web_port}"
        wait_http(pictures + "/__stats", seconds=180)
        wait_http(web + "/healthz")

        # The decode floor: decode + classify of the same pictures in this process, before the scrape, on the
        # cores stage 2 will have.
        os.sched_setaffinity(0, stage_two_cores)
        sample = [_unique(bases[n % BASE_PICTURES], n) for n in range(args.floor_pictures)]
        classifier = classifier_for(model_version_ensure_active())
        rounds, cpu_rounds = [], []
        for _ in range(3):
            started, cpu_started = time.perf_counter(), time.process_time()
            for data in sample:
                classifier.classify(floor_picture(data))
            rounds.append(len(sample) / (time.perf_counter() - started))
            cpu_rounds.append((time.process_time() - cpu_started) / len(sample))
        # The fastest round: other work on shared cores only ever slows a round down, and a floor measured low
        # would make the first scrape's target easier than the cores allow.
        floor = max(rounds)
        floor_cpu = min(cpu_rounds)
        print(
            f"machine: {cores} cores shared with other work, load {os.getloadavg()[0]:.1f}; "
            f"{args.classify_processes} classify processes, {args.fetch_processes} fetch processes"
            + (
                f"; the classify worker on cores {sorted(stage_two_cores)}, the bench's other processes on "
                f"{sorted(other_cores)} (PostgreSQL and Redis anywhere)"
                if args.own_cores
                else ""
            )
        )
        print(
            f"pictures {width}x{height} JPEG ({width * height / 1e6:.1f} MP), "
            f"{min(len(s) for s in sample) // 1024}–{max(len(s) for s in sample) // 1024} KB; production caps: "
            f"{settings.SPOTCHECK_FETCH_MAX_BYTES // 2**20} MB per download, "
            f"{settings.SPOTCHECK_MAX_PIXELS / 1e6:.0f} MP per picture"
        )
        print(
            f"decode floor (decode + classify in process, fastest of 3): {floor:.1f} pictures/s per process "
            f"(wall, at this load); {floor_cpu * 1000:.1f} ms CPU per picture"
        )
        together = parallel_floor(bases_dir, args.floor_pictures, args.classify_processes)
        os.sched_setaffinity(0, other_cores)
        print(
            f"the same loop in {args.classify_processes} processes at once: {together:.1f} pictures/s "
            f"({together / floor:.2f} × one process; what these cores give together, before any pipeline)"
        )
        # What stage 2 must also make of each picture, from the same decoded working picture.
        working = [floor_picture(data) for data in sample]
        extras = {}
        for name, make in (("thumbnail", imaging.thumbnail_bytes), ("pHash", imaging.phash)):
            cpu_started = time.process_time()
            for picture in working:
                make(picture)
            extras[name] = (time.process_time() - cpu_started) / len(working)
        print(
            "stored beside the values (CPU per picture, in process): "
            + ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in extras.items())
            + f"; the first scrape's target leaves {floor_cpu * 250:.1f} ms (25 % of the floor) for everything "
            "beyond decode + classify, in every process on these cores"
        )
        print(f"logs: {logs}", flush=True)

        def scrape(cars: list[int]) -> dict:
            autovacuum_stand_in(db_url)
            urllib.request.urlopen(pictures + "/__reset").read()
            classified_before = Image.objects.filter(classified_at__isnull=False).count()
            load = os.getloadavg()[0]
            cpu_before = {name: cpu_seconds(child.pid) for name, child in processes.items()}
            db_before = database_cpu(admin_url, db_name)
            started = time.time()
            run = api(web, token, "POST", "/api/v1/advertisers/bench-cars/scrapes/", inventory(pictures, cars))
            posted = time.time() - started
            while run["status"] in ("queued", "running"):
                time.sleep(1.0)
                run = api(web, token, "GET", f"/api/v1/scrapes/{run['id']}/")
            finished = datetime.fromisoformat(run["finished_at"].replace("Z", "+00:00")).timestamp()
            begun = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")).timestamp()
            cpu = {name: cpu_seconds(child.pid) - cpu_before[name] for name, child in processes.items()}
            # Backends that ended during the run are missed (connections are persistent: few, if any).
            cpu["database"] = sum(
                used - db_before.get(pid, 0.0) for pid, used in database_cpu(admin_url, db_name).items()
            )
            with urllib.request.urlopen(pictures + "/__stats") as response:
                seen = json.loads(response.read())
            return {
                "cpu": cpu,
                "run": run,
                "seconds": finished - started,
                "post_seconds": posted,
                "work_seconds": finished - begun,
                "seen": seen,
                "classified": Image.objects.filter(classified_at__isnull=False).count() - classified_before,
                "load": load,
            }

        cars = -(-args.pictures // PICTURES_PER_CAR)
        first = scrape(list(range(cars)))
        total = first["run"]["total"]
        first_rate = total / first["seconds"]
        # Against the better of the two floors: one process's times the processes, or all of them measured at once.
        ceiling = max(floor * args.classify_processes, together)
        target_first = 0.8 * ceiling
        print()
        print(
            f"first scrape: {total} pictures in {first['seconds']:.1f} s (POST {first['post_seconds']:.1f} s), "
            f"status {first['run']['status']}, failed {first['run']['failed']}, classified {first['classified']}, "
            f"load at start {first['load']:.1f}"
        )
        print(
            f"  end to end {first_rate:8.1f} pictures/s   target >= 80 % of floor × {args.classify_processes} "
            f"(or of the floor loop in {args.classify_processes} processes at once, whichever is more) "
            f"= {target_first:.1f} ({first_rate / (floor * args.classify_processes):.0%} of floor × processes; "
            f"{first_rate / together:.0%} of the floor loop run in {args.classify_processes} processes at once)"
        )
        if not first["classified"]:
            from sitemaps.models import VehicleImage

            reasons = VehicleImage.objects.exclude(error="").values_list("error", flat=True).distinct()[:5]
            sys.exit(
                f"the first scrape classified nothing (failure reasons: {', '.join(reasons) or 'none'}): see {logs}"
            )
        ms = {name: 1000 * seconds / total for name, seconds in first["cpu"].items()}
        ours = ms["classify"] + ms["fetch"] + ms["web"] + ms["database"]
        print(
            f"  CPU per picture: classify worker {ms['classify']:.1f} ms (floor {floor_cpu * 1000:.1f} ms: "
            f"{floor_cpu * 1000 / ms['classify']:.0%} of it is decode + classify), fetch worker {ms['fetch']:.1f} ms, "
            f"web {ms['web']:.1f} ms, PostgreSQL {ms['database']:.1f} ms, picture server {ms['pictures']:.1f} ms "
            "(Redis not counted)"
        )
        # The target's CPU budget: at the target rate, with every core busy all the time and no loss to
        # scaling, each picture may cost (the cores it shares) / target of CPU; the floor takes its share, the
        # rest is left. With --own-cores only the classify worker runs on stage 2's cores.
        stage_two_ms = ms["classify"] - floor_cpu * 1000
        others_ms = ms["fetch"] + ms["web"] + ms["database"] + ms["pictures"]
        left = len(stage_two_cores) * 1000 / target_first - floor_cpu * 1000
        print(
            f"  beyond decode + classify: {stage_two_ms + (0 if args.own_cores else others_ms):.1f} ms of CPU per "
            f"picture on {'stage 2' if args.own_cores else 'these'} {len(stage_two_cores)} cores (classify worker "
            f"{stage_two_ms:.1f}, of it the thumbnail and the pHash {1000 * sum(extras.values()):.1f} in process"
            + (
                f"; on the other cores: fetch worker {ms['fetch']:.1f}, web, PostgreSQL and the picture server "
                if args.own_cores
                else f"; fetch worker {ms['fetch']:.1f}; web, PostgreSQL and the picture server "
            )
            + f"{ms['web'] + ms['database'] + ms['pictures']:.1f}); the target leaves {left:.1f} ms (every core "
            "busy, perfect scaling)"
        )
        print(
            f"  on {cores} dedicated cores this CPU would allow {cores * 1000 / ours:.1f} pictures/s end to end "
            f"({cores * 1000 / ours / (cores / floor_cpu):.0%} of the CPU floor × {cores}), the classify stage "
            f"alone {args.classify_processes * 1000 / ms['classify']:.1f} pictures/s "
            f"({floor_cpu * 1000 / ms['classify']:.0%} of the CPU floor × {args.classify_processes}: the first "
            "scrape's rate where stage 1, the web and the database have cores of their own)"
        )

        replaced = max(1, round(cars * args.changed))
        kept = list(range(replaced, cars))
        daily = scrape(kept + list(range(cars, cars + replaced)))
        unchanged = {f"/p/{c * PICTURES_PER_CAR + i}.jpg" for c in kept for i in range(PICTURES_PER_CAR)}
        gets = [daily["seen"].get(path, [0, 0, 0]) for path in unchanged]
        per_unchanged = sum(g[0] for g in gets) / len(gets)
        conditional = sum(g[1] for g in gets) / len(gets)
        not_modified = sum(g[2] for g in gets) / len(gets)
        new_pictures = replaced * PICTURES_PER_CAR
        decoded_unchanged = daily["classified"] - new_pictures
        daily_total = daily["run"]["total"]
        daily_rate = daily_total / daily["seconds"]
        print()
        print(
            f"daily re-scrape: {replaced} of {cars} cars replaced ({new_pictures} new pictures of {daily_total}, "
            f"{new_pictures / daily_total:.1%}) in {daily['seconds']:.1f} s, status {daily['run']['status']}, "
            f"from cache {daily['run']['from_cache']}, load at start {daily['load']:.1f}"
        )
        print(f"  end to end {daily_rate:8.1f} pictures/s   reported")
        print(
            f"  requests per unchanged picture {per_unchanged:.3f} (conditional {conditional:.3f}, answered 304 "
            f"{not_modified:.3f})   target 1 conditional GET"
        )
        print(
            f"  pictures classified {daily['classified']} for {new_pictures} new: decodes of unchanged pictures "
            f"{decoded_unchanged}   target 0"
        )

        # The re-check is short (a couple of seconds): it is run --rechecks times and the median run reported.
        print()
        rechecks = []
        for _ in range(args.rechecks):
            recheck = scrape(kept + list(range(cars, cars + replaced)))
            recheck_total = recheck["run"]["total"]
            recheck_304 = sum(v[2] for v in recheck["seen"].values())
            rechecks.append((recheck_total / recheck["work_seconds"], recheck))
            print(
                f"re-check (nothing changed): {recheck_total} pictures, {recheck_304} answered 304, classified "
                f"{recheck['classified']}, {recheck['work_seconds']:.1f} s from start to finish of the run "
                f"({recheck['seconds']:.1f} s with the POST), load at start {recheck['load']:.1f}"
            )
        rechecks.sort(key=lambda pair: pair[0])
        recheck_rate, recheck = rechecks[len(rechecks) // 2]
        recheck_total = recheck["run"]["total"]
        print(f"  the median of {len(rechecks)} re-checks:")
        per_process = recheck_rate / args.fetch_processes
        fetch_ms = 1000 * recheck["cpu"]["fetch"] / recheck_total
        others = ", ".join(
            f"{name} {1000 * seconds / recheck_total:.2f}"
            for name, seconds in recheck["cpu"].items()
            if name != "fetch"
        )
        print(
            f"  {per_process:8.0f} URLs/s per fetch process ({args.fetch_processes} of them)   target >= 1,500; "
            f"fetch worker CPU {fetch_ms:.2f} ms per URL (at most {1000 / fetch_ms:,.0f} URLs/s on a core of its own); "
            f"other CPU per URL, ms: {others}"
        )
        busy = recheck["cpu"]["fetch"] / recheck["work_seconds"] / args.fetch_processes
        print(
            f"  the fetch worker was on a CPU {busy:.0%} of the run per process (the rest: waiting for PostgreSQL, "
            "the picture server, the broker, or a core)"
        )

        # Seed 001 on machines like this one: a daily re-scrape of 6M pictures, 5-10 % of them new.
        seconds_per_new = 1 / first_rate
        seconds_per_known = 1 / recheck_rate
        print()
        for share in (0.05, 0.075, 0.10):
            seconds = SEED_001_PICTURES * (share * seconds_per_new + (1 - share) * seconds_per_known)
            print(
                f"seed 001 ({SEED_001_PICTURES:,} pictures), {share:.1%} new a day: {seconds / 3600:5.1f} "
                f"machine-hours/day on this {cores}-core machine (new at the first-scrape rate, the rest at the "
                f"re-check rate)"
            )
        print(
            f"  from the measured daily re-scrape alone: {SEED_001_PICTURES / daily_rate / 3600:.1f} machine-hours/day"
        )
        held = [
            first_rate >= target_first,
            abs(conditional - 1) < 1e-9 and abs(per_unchanged - 1) < 1e-9,
            decoded_unchanged == 0,
            per_process >= 1500,
        ]
        print(f"\ntargets held: {sum(held)}/{len(held)}")
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}"')
        print(f"logs: {logs}")


if __name__ == "__main__":
    main()
