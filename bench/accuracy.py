"""Benchmark: image-type accuracy of the builtin and the default learned classifier on the held-out set
(bench/heldout.py: real photographs, renders in another style on white and studio backgrounds, "no photo"
cards in other fonts and layouts; 480x360 to 4163x3330; JPEG, PNG, WebP), with confusion matrices, the
learned model's calibration (ECE, reliability table) and colour accuracy on the renders.

    .venv/bin/python bench/accuracy.py [--per-type 40] [--show-misses]

Each picture goes through what the server runs on new bytes (classification.services.image_analyze:
decode with DCT scaling, classify, thumbnail, hash). Needs no database; writes only to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("SPOTCHECK_VAR_DIR", tempfile.mkdtemp(prefix="spotcheck-bench-accuracy-"))
os.environ.pop("DATABASE_URL", None)  # never touch a real database
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

TYPES = ("Dealer", "Stock", "Placeholder")


def _matrix(truth: list[str], predicted: list[str | None], classes=TYPES) -> str:
    width = max(len(c) for c in classes) + 2
    lines = ["true \\ said".ljust(width) + "".join(c.rjust(width) for c in (*classes, "none"))]
    for t in classes:
        row = [sum(1 for a, b in zip(truth, predicted, strict=True) if a == t and b == p) for p in classes]
        row.append(sum(1 for a, b in zip(truth, predicted, strict=True) if a == t and b not in classes))
        lines.append(t.ljust(width) + "".join(str(n).rjust(width) for n in row))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", type=int, default=40)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np
    from heldout import heldout_set

    from classification.classifiers.builtin import BuiltinClassifier
    from classification.classifiers.learned import LearnedClassifier, default_params
    from classification.heads import calibration_report
    from classification.models import ModelVersion
    from classification.services import image_analyze

    started = time.perf_counter()
    pictures = heldout_set(per_type=args.per_type)
    made = time.perf_counter() - started
    print(f"held-out set: {len(pictures)} pictures ({args.per_type} per type), made in {made:.0f} s")
    classifiers = {
        "builtin": BuiltinClassifier(ModelVersion(name="builtin", backend="builtin", params={})),
        "learned": LearnedClassifier(ModelVersion(name="learned", backend="learned", params=default_params())),
    }
    truth = [p[0] for p in pictures]
    accuracies = {}
    for name, classifier in classifiers.items():
        predicted, scores, colors = [], [], []
        for _label, _color, _description, data in pictures:
            values = image_analyze(data=data, classifier=classifier).values or {}
            value, score = values.get("image_type", (None, None))
            predicted.append(value)
            scores.append(score or 0.0)
            colors.append(values.get("color", (None, None))[0])
        accuracy = sum(a == b for a, b in zip(truth, predicted, strict=True)) / len(truth)
        accuracies[name] = accuracy
        print(f"\n== {name}: image type accuracy {accuracy:.1%} ({len(truth)} pictures)")
        print(_matrix(truth, predicted))
        rendered = [(c, p) for (_, c, _, _), p in zip(pictures, colors, strict=True) if c]
        color_accuracy = sum(a == b for a, b in rendered) / len(rendered)
        print(f"colour accuracy on the {len(rendered)} renders (paint known): {color_accuracy:.1%}")
        if name == "learned":
            # The top score is the calibrated probability of the value given: right or wrong per picture.
            hits = np.array([a == b for a, b in zip(truth, predicted, strict=True)])
            top = np.array(scores)
            probabilities = np.stack([top, 1 - top], axis=1)
            report = calibration_report(probabilities, np.where(hits, 0, 1))
            print(f"calibration of the image-type score: ECE {report['ece']:.3f} (reported)")
            for row in report["table"]:
                low, high = row["bin"]
                print(
                    f"  score {low:.1f}-{high:.1f}: n={row['n']:>3}  "
                    f"mean score {row['confidence']:.3f}  right {row['accuracy']:.3f}"
                )
        if args.show_misses:
            for (label, _c, description, _d), said in zip(pictures, predicted, strict=True):
                if label != said:
                    print(f"  miss: {description}: {label} read as {said}")
    print()
    print(f"{'builtin image-type accuracy':<40} {accuracies['builtin']:>7.1%}   reported")
    target = "target >= 95%"
    verdict = "held" if accuracies["learned"] >= 0.95 else "MISSED"
    print(f"{'learned (default heads) accuracy':<40} {accuracies['learned']:>7.1%}   {target}: {verdict}")


if __name__ == "__main__":
    main()
