"""Benchmark: retraining the learned model on 10,000 labelled pictures, the way an admin runs it.

1. Embeddings: each generated 640x480 JPEG is decoded (DCT scaling) and run through the backbone and the
   builtin measures once, then cached (``classification.features``): what classifying a picture costs once.
2. Training with cached embeddings: ``manage.py train_model --attribute image_type --candidates 6`` on the
   same pictures' ground truth (source "import"): the manifest export, reading the cached features, six
   candidates fitted and calibrated (3-fold), each evaluated on the grouped test split beside the serving
   model. Nothing is decoded again: the bench fails if a picture is.

Runs on a temporary SQLite database and media folder (never your dev data; DATABASE_URL/REDIS_URL are
ignored). Target (issue 10): training 10,000 labelled pictures with cached embeddings takes minutes, not
hours: printed beside a 10-minute line.

    .venv/bin/python bench/train.py [--pictures 10000] [--candidates 6]
"""

import argparse
import hashlib
import io
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRAIN_TARGET_S = 600.0
KINDS = {"dealer": "Dealer", "stock": "Stock", "placeholder": "Placeholder"}


def setup_django(var_dir: str) -> None:
    os.environ["SPOTCHECK_VAR_DIR"] = var_dir
    os.environ["MEDIA_ROOT"] = str(Path(var_dir) / "media")
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AWS_STORAGE_BUCKET_NAME"):
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    # The serving model is the learned default: judged on the same cached features, nothing decoded.
    os.environ["SPOTCHECK_CLASSIFIER_BACKEND"] = "learned"
    import django

    django.setup()


def embed_all(n: int) -> tuple[list[tuple[str, str, int]], float, float]:
    """Generate, decode and embed ``n`` pictures; store their features. Returns (sha, label, phash) rows,
    seconds spent generating and seconds spent decoding + embedding."""
    from classification import features, imaging, synthetic
    from classification.vocabulary import Color

    rng = random.Random(7)
    colors = list(Color.values)
    rows, batch, generate_s, embed_s = [], [], 0.0, 0.0
    for i in range(n):
        kind = list(KINDS)[i % 3]
        t = time.perf_counter()
        data = synthetic.picture_bytes(kind=kind, color=rng.choice(colors), width=640, height=480, seed=i)
        generate_s += time.perf_counter() - t
        t = time.perf_counter()
        decoded = imaging.decode(data)
        batch.append((hashlib.sha256(data).hexdigest(), KINDS[kind], decoded))
        if len(batch) == 32 or i == n - 1:
            vectors = features.compute([d.picture for _, _, d in batch])
            features.features_store(
                vectors={sha: v.astype("<f2") for (sha, _, _), v in zip(batch, vectors, strict=True)}
            )
            embed_s += time.perf_counter() - t
            rows.extend((sha, label, imaging.phash_to_db(imaging.phash(d.picture))) for sha, label, d in batch)
            batch = []
        else:
            embed_s += time.perf_counter() - t
        if (i + 1) % 500 == 0:
            print(f"  embedded {i + 1}/{n}", file=sys.stderr)
    return rows, generate_s, embed_s


def seed_truth(rows) -> None:
    from classification.models import GroundTruth, Image

    rows = list({sha: (sha, label, phash) for sha, label, phash in reversed(rows)}.values())  # one per picture
    images = Image.objects.bulk_create(
        [Image(sha256=sha, width=640, height=480, phash=phash, format="JPEG") for sha, _, phash in rows],
        batch_size=2000,
    )
    GroundTruth.objects.bulk_create(
        [
            GroundTruth(image=image, attribute="image_type", value=label, source="import")
            for image, (_, label, _) in zip(images, rows, strict=True)
        ],
        batch_size=2000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=10_000)
    parser.add_argument("--candidates", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spotcheck-bench-train-") as var_dir:
        setup_django(var_dir)
        from django.core.management import call_command

        from classification import embedding, features
        from classification.models import Embedding

        call_command("migrate", verbosity=0)
        embedding.session()  # build the graph once, outside the timings
        rows, generate_s, embed_s = embed_all(args.pictures)
        seed_truth(rows)
        cached = Embedding.objects.count()

        computed = []
        original = features.compute
        features.compute = lambda pictures: computed.append(len(pictures)) or original(pictures)
        out = io.StringIO()
        t = time.perf_counter()
        call_command("train_model", "--attribute", "image_type", "--candidates", str(args.candidates), stdout=out)
        train_s = time.perf_counter() - t
        features.compute = original
        lines = [json.loads(line) for line in out.getvalue().splitlines()]

    n = args.pictures
    print(f"bench/train.py — {n} generated 640x480 JPEGs, {args.candidates} candidates, SQLite, 1 process")
    print(f"  machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(
        f"  embeddings: {embed_s:.1f} s for {n} pictures = {n / embed_s:.1f} pictures/s "
        f"({1000 * embed_s / n:.1f} ms each: decode + backbone + builtin measures; generation {generate_s:.1f} s "
        f"not counted); {cached} cached vectors"
    )
    verdict = "OK" if train_s <= TRAIN_TARGET_S and not computed else "MISSED"
    print(
        f"  training with cached embeddings (export + features read + {args.candidates} candidates + "
        f"evaluation): {train_s:.1f} s   target: minutes, not hours (<= {TRAIN_TARGET_S:.0f} s)   {verdict}"
    )
    print(f"  pictures decoded again while training: {sum(computed)}   target: 0")
    for line in lines:
        if "name" in line:
            test = line["test"]
            print(
                f"    {line['name']:<18} {line['feature_set']:<18} C={line['c']:<5} train={line['train_size']} "
                f"test n={test['n']} accuracy={test['accuracy']:.4f} ECE={test['ece']:.4f}"
            )
        elif "active" in line:
            print(f"    serving: {line['active']} ({line['backend']}) accuracy={line['test']['accuracy']:.4f}")


if __name__ == "__main__":
    main()
