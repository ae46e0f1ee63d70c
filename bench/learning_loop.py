"""Benchmark: the learning loop as an admin runs it: import a few hundred labelled pictures, retrain, and
measure the promoted model on pictures from outside its training set.

The pictures are of the kinds the default heads were NOT built from (bench/heldout.py: real photographs
bundled with scikit-image and scikit-learn, renders in another style on white and studio backgrounds,
"photo coming soon" cards in system fonts; 480x360 to 4163x3330; JPEG, PNG, WebP), split so that nothing
crosses from training to evaluation: another seed, and the photographs grouped by source (the photos of
half the source scenes are imported, the other half's are evaluated), so a crop of an evaluated scene is
never trained on.

1. ``manage.py import_dataset DIR --attribute image_type`` (and ``--attribute color`` for the renders,
   whose paint is known), as folder-per-class datasets.
2. ``manage.py train_model --attribute image_type --promote-if-better``, then the same for colour.
3. The active learned model before (shipped default heads) and after, on the evaluation pictures: image-type
   accuracy with its confusion matrix, colour accuracy on the renders. Targets (issue 10): image type
   >= 99 %, colour >= 95 %.

Runs on a temporary SQLite database and media folder (DATABASE_URL/REDIS_URL are ignored).

    .venv/bin/python bench/learning_loop.py [--import-per-type 120] [--eval-per-type 60]
"""

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TYPES = ("Dealer", "Stock", "Placeholder")
SUFFIX = {b"\xff\xd8": ".jpg", b"\x89P": ".png", b"RI": ".webp"}


def setup_django(var_dir: str) -> None:
    os.environ["SPOTCHECK_VAR_DIR"] = var_dir
    os.environ["MEDIA_ROOT"] = str(Path(var_dir) / "media")
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AWS_STORAGE_BUCKET_NAME"):
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["SPOTCHECK_CLASSIFIER_BACKEND"] = "learned"
    import django

    django.setup()


def split_sets(import_per_type: int, eval_per_type: int):
    """(import pictures, evaluation pictures): other seeds, and the photographs of disjoint source scenes."""
    import heldout

    scenes = sorted(name for name, _ in heldout._photos())
    trained_scenes = set(scenes[::2])

    def photo_scene(description: str) -> str:
        return description.split()[1]

    def keep(pictures, trained: bool):
        return [p for p in pictures if p[0] != "Dealer" or (photo_scene(p[2]) in trained_scenes) == trained]

    # About half of the photos drawn belong to the other side's scenes: each side has fewer Dealer pictures.
    imported = keep(heldout.heldout_set(per_type=import_per_type, seed=101), trained=True)
    evaluated = keep(heldout.heldout_set(per_type=eval_per_type, seed=202), trained=False)
    return _balanced(imported, import_per_type), _balanced(evaluated, eval_per_type), sorted(trained_scenes)


def _balanced(pictures, per_type: int):
    out, counts = [], dict.fromkeys(TYPES, 0)
    for p in pictures:
        if counts[p[0]] < per_type:
            counts[p[0]] += 1
            out.append(p)
    return out


def write_folders(root: Path, pictures) -> tuple[Path, Path]:
    types, colors = root / "image_type", root / "color"
    for i, (label, color, _description, data) in enumerate(pictures):
        suffix = SUFFIX.get(data[:2], ".img")
        (types / label).mkdir(parents=True, exist_ok=True)
        (types / label / f"{i:05d}{suffix}").write_bytes(data)
        if color:
            (colors / color).mkdir(parents=True, exist_ok=True)
            (colors / color / f"{i:05d}{suffix}").write_bytes(data)
    return types, colors


def evaluate(version, pictures) -> dict:
    from classification.classifiers import classifier_for
    from classification.services import image_analyze

    classifier = classifier_for(version)
    truth, said, colors = [], [], []
    for label, color, _description, data in pictures:
        values = image_analyze(data=data, classifier=classifier).values or {}
        truth.append(label)
        said.append(values.get("image_type", (None, None))[0])
        if color:
            colors.append((color, values.get("color", (None, None))[0]))
    return {
        "type_accuracy": sum(a == b for a, b in zip(truth, said, strict=True)) / len(truth),
        "color_accuracy": sum(a == b for a, b in colors) / len(colors) if colors else None,
        "matrix": {
            t: {p: sum(1 for a, b in zip(truth, said, strict=True) if a == t and b == p) for p in TYPES} for t in TYPES
        },
        "n": len(truth),
        "n_colors": len(colors),
    }


def show(name: str, result: dict) -> None:
    print(
        f"\n== {name}: image type {result['type_accuracy']:.1%} on {result['n']} pictures; "
        f"colour {result['color_accuracy']:.1%} on {result['n_colors']} renders"
    )
    width = 13
    print("true \\ said".ljust(width) + "".join(t.rjust(width) for t in TYPES))
    for t in TYPES:
        print(t.ljust(width) + "".join(str(result["matrix"][t][p]).rjust(width) for p in TYPES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--import-per-type", type=int, default=120)
    parser.add_argument("--eval-per-type", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spotcheck-bench-loop-") as var_dir:
        setup_django(var_dir)
        from django.core.management import call_command

        from classification.models import Backend, ModelVersion
        from classification.services import model_version_ensure_active

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        imported, evaluated, scenes = split_sets(args.import_per_type, args.eval_per_type)
        types_dir, colors_dir = write_folders(Path(var_dir) / "dataset", imported)
        print(
            f"bench/learning_loop.py — import {len(imported)} pictures, evaluate on {len(evaluated)} others "
            f"(made in {time.perf_counter() - started:.0f} s); photos of scenes {', '.join(scenes)} imported, "
            f"the other scenes' evaluated"
        )
        print(f"  machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        default = model_version_ensure_active(backend=Backend.LEARNED)
        before = evaluate(default, evaluated)

        for attribute, folder in (("image_type", types_dir), ("color", colors_dir)):
            out = io.StringIO()
            t = time.perf_counter()
            call_command("import_dataset", str(folder), "--attribute", attribute, "--no-progress", stdout=out)
            report = json.loads(out.getvalue())
            print(
                f"  import {attribute}: {report['recorded']} recorded from {report['files']} files "
                f"({report['duplicates']} duplicates, rejected {report['rejected'] or 'none'}) "
                f"in {time.perf_counter() - t:.0f} s"
            )
            out = io.StringIO()
            t = time.perf_counter()
            call_command(
                "train_model", "--attribute", attribute, "--candidates", "6", "--promote-if-better", stdout=out
            )
            lines = [json.loads(line) for line in out.getvalue().splitlines()]
            best = next(line for line in lines if "name" in line)
            serving = next(line for line in lines if "active" in line)
            promoted = next((line["promoted"] for line in lines if "promoted" in line), None)
            print(
                f"  train {attribute}: best {best['name']} ({best['feature_set']}, C={best['c']}) test accuracy "
                f"{best['test']['accuracy']:.3f} ECE {best['test']['ece']:.3f} on {best['test']['n']} "
                f"(serving {serving['test']['accuracy']:.3f}); promoted: {promoted or 'no'} "
                f"in {time.perf_counter() - t:.0f} s"
            )

        after_version = ModelVersion.objects.get(backend=Backend.LEARNED, status=ModelVersion.Status.ACTIVE)
        after = evaluate(after_version, evaluated)

    show(f"before: {default.name} (shipped default heads)", before)
    show(f"after: {after_version.name} (retrained on the import)", after)
    print()
    for label, value, target in (
        ("image type after retraining", after["type_accuracy"], 0.99),
        ("colour after retraining", after["color_accuracy"], 0.95),
    ):
        verdict = "held" if value is not None and value >= target else "MISSED"
        print(f"{label:<32} {value:>7.1%}   target >= {target:.0%}: {verdict}")


if __name__ == "__main__":
    main()
