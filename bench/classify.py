"""Benchmark: decode + classify + thumbnail of one big JPEG against the `djpeg -scale 1/4` floor, throughput
on a generated set, and the peak RSS of a fresh process classifying one big picture.

    .venv/bin/python bench/classify.py [--runs 9] [--set 60]

Needs no database (the builtin classifier runs on an unsaved model version with the default params) and
writes only to a temporary folder. Figures are medians; targets are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_tmp = tempfile.mkdtemp(prefix="spotcheck-bench-classify-")
os.environ.setdefault("SPOTCHECK_VAR_DIR", _tmp)
os.environ.pop("DATABASE_URL", None)  # never touch a real database
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

BIG = (4163, 3330)


def _setup():
    import django

    django.setup()


def _pipeline():
    from classification.classifiers.builtin import BuiltinClassifier
    from classification.imaging import decode, phash, thumbnail_bytes
    from classification.models import ModelVersion

    classifier = BuiltinClassifier(ModelVersion(name="bench", backend="builtin", params={}))

    def decode_classify(data: bytes):
        decoded = decode(data)
        return decoded, classifier.classify(decoded.picture)

    def full(data: bytes):
        decoded, values = decode_classify(data)
        thumbnail_bytes(decoded.picture)
        phash(decoded.picture)
        return values

    return decode_classify, full


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def one(path: str) -> None:
    """Child mode: a fresh process that classifies one picture and reports its peak RSS."""
    _setup()
    _decode_classify, full = _pipeline()
    values = full(Path(path).read_bytes())
    print(f"{_peak_rss_kb()} {values['image_type'][0]}")


def _peak_rss_kb() -> int:
    """VmHWM: the high-water mark of this process's own memory. (getrusage's ru_maxrss is not used: on
    Linux it carries the parent's peak over fork+exec, so a child would report its parent's figure.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--set", type=int, default=60, dest="set_size")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one)
        return

    _setup()
    from classification.synthetic import KINDS, PAINT, picture_bytes

    decode_classify, full = _pipeline()
    big_path = Path(_tmp) / "big.jpg"
    big = picture_bytes(kind="dealer", color="Red", width=BIG[0], height=BIG[1], quality=90)
    big_path.write_bytes(big)
    print(f"machine: {os.cpu_count()} cores (shared), Python {sys.version.split()[0]}")
    print(f"big picture: generated dealer JPEG {BIG[0]}x{BIG[1]}, {len(big) / 1e6:.1f} MB, q90")

    djpeg = ["djpeg", "-scale", "1/4", "-outfile", os.devnull, str(big_path)]
    spawn = ["djpeg", "-version"]
    try:
        subprocess.run(spawn, check=True, capture_output=True)
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        sys.exit(f"djpeg (libjpeg-turbo-progs) is needed for the floor: {exc}")
    decode_classify(big)  # warm up: imports, lookup tables
    # Interleaved, so that the floor and our figures see the same load on a shared machine.
    samples: dict[str, list[float]] = {"djpeg": [], "spawn": [], "dc": [], "full": []}
    steps = {
        "djpeg": lambda: subprocess.run(djpeg, check=True),
        "spawn": lambda: subprocess.run(spawn, check=True, capture_output=True),
        "dc": lambda: decode_classify(big),
        "full": lambda: full(big),
    }
    for _ in range(args.runs):
        for name, step in steps.items():
            samples[name].append(_median_ms(step, 1))
    floor_raw, spawn_ms = statistics.median(samples["djpeg"]), statistics.median(samples["spawn"])
    floor = max(0.1, floor_raw - spawn_ms)  # the decode itself, without starting a process
    dc_ms, full_ms = statistics.median(samples["dc"]), statistics.median(samples["full"])

    kinds = [(k, c) for k in KINDS for c in PAINT]
    pictures = [
        picture_bytes(kind=k, color=c, seed=i, width=1024, height=768)
        for i, (k, c) in zip(range(args.set_size), kinds * (args.set_size // len(kinds) + 1), strict=False)
    ]
    started = time.perf_counter()
    for data in pictures:
        full(data)
    per_minute = len(pictures) / (time.perf_counter() - started) * 60

    child = subprocess.run(
        [sys.executable, __file__, "--one", str(big_path)], check=True, capture_output=True, text=True
    )
    peak_mb = int(child.stdout.split()[0]) / 1024

    ratio = dc_ms / floor
    rows = [
        (
            "djpeg -scale 1/4 (floor, spawn subtracted)",
            f"{floor:.1f} ms",
            f"raw {floor_raw:.1f} ms - spawn {spawn_ms:.1f} ms",
        ),
        ("decode+classify, big JPEG", f"{dc_ms:.1f} ms", f"target <= 1.5x floor = {1.5 * floor:.1f} ms ({ratio:.2f}x)"),
        ("decode+classify+thumbnail+phash, big JPEG", f"{full_ms:.1f} ms", "reported"),
        (f"images/min/core, {len(pictures)} generated 1024x768 JPEGs", f"{per_minute:,.0f}", "target >= 1,000"),
        ("peak RSS, fresh process classifying the big JPEG", f"{peak_mb:.0f} MB", "target <= 128 MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>10}   {target}")
    held = [ratio <= 1.5, per_minute >= 1000, peak_mb <= 128]
    print(f"\ntargets held: {sum(held)}/{len(held)}")


if __name__ == "__main__":
    main()
