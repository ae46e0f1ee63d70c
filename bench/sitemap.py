"""Benchmark: the review page of an advertiser with 1,000 vehicles x 12 pictures through the Django test client
(wall and CPU time, SQL time and query count of the first, last, 100-per-page, filtered and disagreement views,
the advertiser list and the API) and ingestion of 10,000 x 12 through the API, on SQLite and on PostgreSQL.

    .venv/bin/python bench/sitemap.py                 # both backends (PostgreSQL skipped if unreachable)
    .venv/bin/python bench/sitemap.py --backend sqlite

SQLite runs in a temporary folder; PostgreSQL in a dedicated database (spotcheck_bench_b, created and dropped
here), so dev data is never touched. Targets are printed beside the figures. Not a test.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_DB = os.environ.get("BENCH_PG_DB", "spotcheck_bench_b")
TARGET_PAGE_MS = 150
TARGET_QUERIES = 15
TARGET_INGEST_S = 20


def run_backend(backend: str, vehicles: int, ingest_vehicles: int, runs: int) -> int:
    """Run the measurements in a child process, whose settings point at a throwaway database."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env["SPOTCHECK_VAR_DIR"] = tempfile.mkdtemp(prefix=f"spotcheck-bench-{backend}-")
    env["DEBUG"] = "1"
    env["LOG_LEVEL"] = "WARNING"
    if backend == "postgres":
        import psycopg

        try:
            admin = psycopg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True)
        except psycopg.OperationalError as exc:
            print(f"[postgres] skipped: cannot connect ({exc.__class__.__name__})")
            return 0
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}"')
        admin.execute(f'CREATE DATABASE "{PG_DB}"')
        env["DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_DB}"
    else:
        env.pop("DATABASE_URL", None)
    try:
        args = [sys.executable, __file__, "--child", backend, "--vehicles", str(vehicles)]
        args += ["--ingest-vehicles", str(ingest_vehicles), "--runs", str(runs)]
        return subprocess.call(args, env=env, cwd=ROOT)
    finally:
        if backend == "postgres":
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            admin.close()


def child(backend: str, vehicles: int, ingest_vehicles: int, runs: int) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)

    import hashlib

    from django.contrib.auth.models import Group, User

    from classification.models import Image, Prediction
    from classification.services import model_version_ensure_active
    from sitemaps import tasks
    from sitemaps.fixes import FixChange, fixes_apply
    from sitemaps.ingest import advertiser_ensure, inventory_parse, scrape_ingest
    from sitemaps.models import VehicleImage

    # Measure writes and pages only: classification and cache pushes are other benchmarks.
    tasks.scrape_classify.delay = lambda *a, **k: None
    tasks.fix_deliver.delay = lambda *a, **k: None

    reviewer = User.objects.create_user("bench-reviewer", password="x")
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    client = Client()
    client.force_login(reviewer)

    def inventory(n: int, per: int = 12, host: str = "cdn") -> dict:
        return {
            "vehicles": [
                {
                    "external_id": f"V{i:06d}",
                    "title": f"Vehicle {i}",
                    "color": "Red" if i % 7 == 0 else None,
                    "images": [f"https://{host}.example.com/{i}/{p}.jpg" for p in range(per)],
                }
                for i in range(n)
            ]
        }

    def build(slug: str, n: int) -> None:
        """An advertiser with n vehicles x 12 classified pictures and a few fixes (setup, not measured)."""
        advertiser = advertiser_ensure(slug=slug)
        scrape_ingest(advertiser=advertiser, vehicles=inventory_parse(payload=inventory(n, host=slug)))
        version = model_version_ensure_active()
        rows = list(VehicleImage.objects.filter(vehicle__advertiser=advertiser).values_list("id", flat=True))
        images = Image.objects.bulk_create(
            [
                Image(sha256=hashlib.sha256(f"{slug}-{i}".encode()).hexdigest(), width=800, height=600)
                for i in range(len(rows))
            ],
            batch_size=2000,
        )
        kinds = ("Dealer", "Dealer", "Stock", "Placeholder", "")
        Prediction.objects.bulk_create(
            [
                Prediction(image=img, attribute=attr, value=value, score=0.9, model_version=version)
                for i, img in enumerate(images)
                for attr, value in (("image_type", kinds[i % 5]), ("color", "Blue" if i % 3 else ""))
            ],
            batch_size=2000,
        )
        VehicleImage.objects.bulk_update(
            [VehicleImage(id=vi_id, image=img, status="done") for vi_id, img in zip(rows, images, strict=True)],
            ["image", "status"],
            batch_size=1000,
        )
        fixes_apply(
            user=reviewer,
            advertiser=advertiser,
            changes=[FixChange(vi_id, "image_type", "Stock") for vi_id in rows[:5]]
            + [FixChange(vi_id, "color", "Green") for vi_id in rows[-5:]]
            # Disagreements: an advertiser-only fix against a staff fix, and fixes against a sure classifier.
            + [FixChange(vi_id, "image_type", "Dealer", scope="advertiser") for vi_id in rows[:3]]
            + [FixChange(vi_id, "image_type", "Placeholder") for vi_id in rows[100:140:4]],
        )

    def measure(path: str) -> tuple[float, float, int, float]:
        """Medians of the wall time, of the CPU time of this process (the machine is shared: CPU time is what the
        page itself costs) and of the time spent waiting for the database; the query count."""
        client.get(path)  # warm
        wall, cpu, sql, counts = [], [], [], set()
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get(path)
                wall.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)
            assert response.status_code == 200, response.status_code
            sql.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
            counts.add(len(queries))
        assert len(counts) == 1, counts
        return statistics.median(wall), statistics.median(cpu), counts.pop(), statistics.median(sql)

    label = f"[{backend}]"
    build("bench-big", vehicles)
    build("bench-small", 10)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # what autovacuum does after a bulk load
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        path = os.environ["BENCH_PROFILE"] if os.environ["BENCH_PROFILE"].startswith("/") else "/sitemaps/bench-big/"
        client.get(path)
        profile = cProfile.Profile()
        profile.runcall(client.get, path)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    if os.environ.get("BENCH_QUERIES"):  # BENCH_QUERIES=/sitemaps/ prints that page's queries, slowest first
        client.get(os.environ["BENCH_QUERIES"])
        with CaptureQueriesContext(connection) as queries:
            client.get(os.environ["BENCH_QUERIES"])
        for q in sorted(queries.captured_queries, key=lambda q: -float(q["time"])):
            print(f"{float(q['time']) * 1000:7.1f} ms  {q['sql'][:300]}")
        return
    if os.environ.get("BENCH_EXPLAIN"):
        from sitemaps.models import Advertiser
        from sitemaps.selectors import Filters, pictures_filtered

        big = Advertiser.objects.get(slug="bench-big")
        for f in (Filters(ml_failures=True), Filters(image_type="Stock"), Filters(fixed=True)):
            qs = pictures_filtered(advertiser=big, filters=f).values_list("vehicle_id", "id")
            started = time.perf_counter()
            list(qs)
            print(f, f"{(time.perf_counter() - started) * 1000:.1f} ms")
            if os.environ.get("BENCH_EXPLAIN") == "2":
                print(qs.explain(analyze=True))
        return
    last = (vehicles + settings.SPOTCHECK_SITEMAP_PAGE_SIZE - 1) // settings.SPOTCHECK_SITEMAP_PAGE_SIZE
    print(f"{label} review page, {vehicles} vehicles x 12 pictures, 25 vehicles/page, median of {runs}:")
    counts = set()
    for name, path in (
        ("first page", "/sitemaps/bench-big/"),
        ("last page", f"/sitemaps/bench-big/?page={last}"),
        ("page 3, 100/page", "/sitemaps/bench-big/?page=3&size=100"),
        ("filtered (failures, type)", "/sitemaps/bench-big/?failures=1&type=Stock"),
        ("filtered (type), page 5", "/sitemaps/bench-big/?type=Dealer&page=5"),
        ("disagreements", "/sitemaps/bench-big/?disagreement=1"),
        ("fixed, 100/page", "/sitemaps/bench-big/?fixed=1&size=100"),
        ("advertiser list", "/sitemaps/"),
        ("small advertiser (10)", "/sitemaps/bench-small/"),
    ):
        ms, cpu, n, sql_ms = measure(path)
        counts.add(n)
        print(
            f"  {name:<28} {ms:7.1f} ms wall, {cpu:6.1f} ms CPU, {sql_ms:6.1f} ms SQL (target <= {TARGET_PAGE_MS})"
            f"   {n:3d} queries (target <= {TARGET_QUERIES})"
        )
    print(f"  query counts seen: {sorted(counts)} (target: each <= {TARGET_QUERIES})")
    print(f"  load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times need a quiet machine)")

    ms, cpu, n, _sql = measure("/api/v1/advertisers/bench-big/sitemap/?page=40")
    print(f"  {'sitemap API, page 40':<28} {ms:7.1f} ms wall, {cpu:6.1f} ms CPU               {n:3d} queries")

    body = json.dumps(inventory(ingest_vehicles, host="ingest"))
    print(f"{label} ingestion via POST /api/v1/advertisers/…/scrapes/ ({len(body) / 1e6:.1f} MB JSON):")
    for name in ("first scrape (all new)", "same inventory again"):
        started = time.perf_counter()
        response = client.post("/api/v1/advertisers/bench-ingest/scrapes/", body, content_type="application/json")
        elapsed = time.perf_counter() - started
        assert response.status_code == 202, response.content[:300]
        print(
            f"  {name:<28} {elapsed:7.2f} s  (target <= {TARGET_INGEST_S})   "
            f"{ingest_vehicles} vehicles, {response.json()['total']} pictures"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--ingest-vehicles", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--child", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.vehicles, args.ingest_vehicles, args.runs)
        return
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    status = 0
    for backend in backends:
        status |= run_backend(backend, args.vehicles, args.ingest_vehicles, args.runs)
    sys.exit(status)


if __name__ == "__main__":
    main()
