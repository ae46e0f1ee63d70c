"""Benchmark: dataset export time and peak memory.

* manifest-only export of 100,000 ground-truth rows (≈ 90,000 pictures, some with two voices, some conflicting);
* zip export of 10,000 pictures with small generated JPEG thumbnails.

Runs on a temporary SQLite database and media folder (never your dev data; DATABASE_URL/REDIS_URL are
ignored). Each export runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own; three runs each,
medians printed with the targets beside them (≤ 15 s, ≤ 60 s, ≤ 200 MB).

    .venv/bin/python bench/export.py [--rows 100000] [--pictures 10000] [--runs 3]
"""

import argparse
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(var_dir: str) -> None:
    os.environ["SPOTCHECK_VAR_DIR"] = var_dir
    os.environ["MEDIA_ROOT"] = str(Path(var_dir) / "media")
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AWS_STORAGE_BUCKET_NAME"):
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()


def seed(rows: int, pictures: int) -> None:
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone
    from PIL import Image as PILImage

    from classification.models import GroundTruth, Image

    call_command("migrate", verbosity=0)
    rng = random.Random(42)
    now = timezone.now() - timedelta(hours=1)
    sources = ["consensus", "staff_fix", "advertiser_fix", "adjudication"]

    # 1. Manifest-only set: `rows` image_type ground truths; every tenth picture has a second voice
    #    (agreeing 70 % of the time, else a conflict).
    t = time.perf_counter()
    values = ["Dealer", "Stock", "Placeholder"]
    made = 0
    while made < rows:
        images = Image.objects.bulk_create(
            [
                Image(
                    sha256=f"{rng.getrandbits(256):064x}",
                    width=rng.choice([100, 640, 800]),
                    height=480,
                    phash=rng.getrandbits(63),
                    format="JPEG",
                )
                for _ in range(5000)
            ]
        )
        truths = []
        for n, image in enumerate(images):
            if made >= rows:
                break
            value, source = rng.choice(values), rng.choice(sources)
            advertiser = f"adv-{rng.randint(1, 300)}" if source == "advertiser_fix" or rng.random() < 0.5 else ""
            truths.append(
                GroundTruth(
                    image_id=image.pk,
                    attribute="image_type",
                    value=value,
                    source=source,
                    advertiser=advertiser,
                    url=f"https://cdn.example/{image.sha256[:16]}.jpg",
                    votes=5 if source == "consensus" else None,
                    margin=3 if source == "consensus" else None,
                    created_at=now,
                )
            )
            made += 1
            if n % 10 == 0 and made < rows:
                other = value if rng.random() < 0.7 else rng.choice(values)
                second = "staff_fix" if source != "staff_fix" else "consensus"
                truths.append(
                    GroundTruth(image_id=image.pk, attribute="image_type", value=other, source=second, created_at=now)
                )
                made += 1
        GroundTruth.objects.bulk_create(truths)
    n_images = Image.objects.count()
    gt_rows = GroundTruth.objects.filter(attribute="image_type").count()
    print(
        f"seeded {gt_rows:,} image_type ground-truth rows on {n_images:,} pictures in {time.perf_counter() - t:.1f} s"
    )

    # 2. Zip set: `pictures` colour ground truths, each picture with a small JPEG thumbnail on disk.
    t = time.perf_counter()
    media = Path(os.environ["MEDIA_ROOT"]) / "thumbnails"
    media.mkdir(parents=True, exist_ok=True)
    jpegs = []
    for k in range(64):
        img = PILImage.effect_noise((240, 180), 40 + k).convert("RGB")
        img = PILImage.blend(img, PILImage.new("RGB", img.size, (rng.randrange(256), 90, 140)), 0.5)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        jpegs.append(buf.getvalue())
    images = []
    for i in range(pictures):
        sha = f"{rng.getrandbits(256):064x}"
        name = f"thumbnails/{sha}.jpg"
        (media / f"{sha}.jpg").write_bytes(jpegs[i % len(jpegs)])
        images.append(
            Image(sha256=sha, width=800, height=600, phash=rng.getrandbits(63), format="JPEG", thumbnail=name)
        )
    created = Image.objects.bulk_create(images, batch_size=2000)
    colors = ["Black", "Blue", "Grey", "Red", "White", "Green"]
    GroundTruth.objects.bulk_create(
        [
            GroundTruth(image_id=im.pk, attribute="color", value=rng.choice(colors), source="staff_fix", created_at=now)
            for im in created
        ],
        batch_size=5000,
    )
    size = sum(len(jpegs[i % len(jpegs)]) for i in range(pictures)) / 1e6
    print(f"seeded {pictures:,} colour pictures ({size:.0f} MB of thumbnails) in {time.perf_counter() - t:.1f} s")


def run_one(attribute: str, manifest_only: bool) -> None:
    """In a fresh process: request and run one export, print its time and this process's peak RSS."""
    from datasets.export import export_params_build, export_run
    from datasets.services import export_request

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    export = export_request(params=export_params_build(attribute=attribute), manifest_only=manifest_only, enqueue=False)
    t = time.perf_counter()
    export = export_run(export_id=export.pk)
    seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": rss / 1024,
                "rss_before_mb": rss_before / 1024,
                "rows": export.rows,
                "status": export.status,
                "size_mb": export.file.size / 1e6,
            }
        )
    )


def measure(var_dir: str, attribute: str, manifest_only: bool, runs: int) -> list[dict]:
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "--child", var_dir, attribute, "1" if manifest_only else "0"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ},
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def report(title: str, results: list[dict], target_s: float, target_mb: float) -> None:
    seconds = statistics.median(r["seconds"] for r in results)
    rss = statistics.median(r["peak_rss_mb"] for r in results)
    base = statistics.median(r["rss_before_mb"] for r in results)
    print(f"{title}: {results[0]['rows']:,} pictures exported, file {results[0]['size_mb']:.1f} MB")
    print(f"  time      median {seconds:6.2f} s   (target ≤ {target_s:.0f} s)   {_verdict(seconds, target_s)}")
    print(f"  peak RSS  median {rss:6.1f} MB  (target ≤ {target_mb:.0f} MB) {_verdict(rss, target_mb)}")
    print(f"  (the process weighed {base:.0f} MB before the export began: Python + Django)")
    runs = ", ".join(f"{r['seconds']:.2f} s / {r['peak_rss_mb']:.0f} MB" for r in results)
    print(f"  runs: {runs}")


def _verdict(value: float, target: float) -> str:
    return "OK" if value <= target else "MISSED"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, var_dir, attribute, manifest_only = sys.argv
        setup_django(var_dir)
        run_one(attribute, manifest_only == "1")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pictures", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spotcheck-bench-export-") as var_dir:
        print(f"temporary SQLite database and media under {var_dir} (machine: shared, see `nproc`={os.cpu_count()})")
        seed_proc = subprocess.run(
            [sys.executable, __file__, "--seed", var_dir, str(args.rows), str(args.pictures)], check=True
        )
        del seed_proc
        report("manifest-only export", measure(var_dir, "image_type", True, args.runs), 15, 200)
        report("zip export", measure(var_dir, "color", False, args.runs), 60, 200)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--seed":
        setup_django(sys.argv[2])
        seed(int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
