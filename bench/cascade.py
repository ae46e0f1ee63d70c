"""Benchmark: accuracy and cost per 1,000 pictures of the builtin model alone, a paid backend alone (the local
fake Azure) and the cascade (builtin first, the paid backend below a confidence threshold), side by side.

    .venv/bin/python bench/cascade.py [--per-kind 20] [--hard 0.3] [--thresholds 0.8,0.95] [--paid-error 0.03]

Every picture goes through the API a client uses: POST /api/v1/classify/ with the picture as a multipart
upload; pictures sent to each backend and the estimated cost are the answers' ``usage``. Generated pictures
(classification/synthetic.py, seeds not used by the tests) with known type and colour, a share of them made
harder the way listing pictures are (a render on an off-white background, a photo shrunk to a thumbnail and
blown up, an underexposed photo); a fresh temporary SQLite database per configuration (a known picture is
never classified twice).

The paid backend is SIMULATED: the fake recognises each generated picture by its perceptual hash and
answers what Azure would for it (a car on white for Stock, a car elsewhere for Dealer, text and a logo for a
placeholder, the paint in Azure's 12-colour palette, where Burgundy is "Red"), wrong on ``--paid-error`` of
the pictures. Its accuracy figures are therefore an assumption, not a measurement of Azure; the counts of
paid calls and the cost are what the cascade really decides.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_tmp = tempfile.mkdtemp(prefix="spotcheck-bench-cascade-")
os.environ["SPOTCHECK_VAR_DIR"] = _tmp
os.environ.pop("DATABASE_URL", None)  # never touch a real database
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

AZURE_PALETTE = {"Grey": "Gray", "Burgundy": "Red"}  # our names Azure has no colour for


def _harder(picture, kind: str, i: int):
    """One of the ways real listing pictures are harder than the generated ones."""
    from PIL import Image, ImageEnhance

    if kind == "stock":  # a render on an off-white studio background
        grey = picture.convert("L").point(lambda v: 255 if v >= 235 else 0)
        return Image.composite(Image.new("RGB", picture.size, (214, 214, 220)), picture, grey)
    if i % 2:  # a thumbnail blown up
        return picture.resize((96, 72), Image.Resampling.BOX).resize(picture.size, Image.Resampling.BILINEAR)
    return ImageEnhance.Brightness(picture).enhance(0.4)  # underexposed


def pictures(per_kind: int, hard: float) -> list[dict]:
    import io

    from classification.synthetic import KINDS, PAINT, picture

    colours = list(PAINT)
    made = []
    for k, kind in enumerate(KINDS):
        for i in range(per_kind):
            colour = colours[(i * 5 + k) % len(colours)]
            image = picture(kind=kind, color=colour, width=640, height=480, seed=9000 + 100 * k + i)
            is_hard = kind != "placeholder" and i < round(hard * per_kind)
            image = _harder(image, kind, i) if is_hard else image
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
            made.append({"kind": kind, "color": colour, "data": buffer.getvalue(), "name": f"{kind}-{i}.jpg"})
    return made


def oracle(made: list[dict], error_rate: float, seed: int = 7):
    """The fake's responder: recognise the picture by perceptual hash, answer as Azure would, sometimes wrong."""
    from classification import imaging
    from tests.fakes.azure import answer

    known = [(imaging.phash(imaging.decode(p["data"]).picture), p) for p in made]
    wrong = {p["name"] for p in random.Random(seed).sample(made, round(error_rate * len(made)))}
    others = {"dealer": "stock", "stock": "placeholder", "placeholder": "dealer"}

    def respond(picture) -> dict:
        digest = imaging.phash(picture)
        _, truth = min(known, key=lambda entry: imaging.hamming(entry[0], digest))
        kind = others[truth["kind"]] if truth["name"] in wrong else truth["kind"]
        paint = AZURE_PALETTE.get(truth["color"], truth["color"])
        if kind == "placeholder":
            return answer(tags=[("text", 0.97), ("logo", 0.9), ("font", 0.88)], foreground="White", background="Gray")
        return answer(
            tags=[("car", 0.96), ("vehicle", 0.95), ("wheel", 0.9), ("outdoor" if kind == "dealer" else "white", 0.8)],
            objects=[("car", 0.9, "Land vehicle", "Vehicle")],
            foreground=paint,
            background="White" if kind == "stock" else "Gray",
        )

    return respond


def run(label: str, backend: str, made: list[dict], settings, extra: dict) -> dict:
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import override_settings

    from core.roles import Role

    call_command("flush", interactive=False, verbosity=0)
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user("bench", password="x")
    user.groups.add(Group.objects.get_or_create(name=Role.REVIEWER)[0])
    client = Client()
    client.force_login(user)
    correct_type = correct_color = colour_total = 0
    sent: dict[str, int] = {}
    cost = 0.0
    with override_settings(SPOTCHECK_CLASSIFIER_BACKEND=backend, ALLOWED_HOSTS=["testserver"], **extra):
        for p in made:
            from django.core.files.uploadedfile import SimpleUploadedFile

            response = client.post("/api/v1/classify/", {"file": SimpleUploadedFile(p["name"], p["data"])})
            body = response.json()
            result = body["results"][0]
            correct_type += result["image_type"] == p["kind"].title()
            if p["kind"] != "placeholder":
                colour_total += 1
                correct_color += result["color"] == p["color"]
            for name, n in body["usage"]["pictures"].items():
                sent[name] = sent.get(name, 0) + n
            cost += body["usage"]["estimated_cost"]
    n = len(made)
    return {
        "label": label,
        "type": correct_type / n,
        "color": correct_color / max(colour_total, 1),
        "paid_share": sum(v for k, v in sent.items() if k in {"azure", "rekognition"}) / n,
        "cost_per_1000": cost / n * 1000,
        "sent": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=20)
    parser.add_argument("--hard", type=float, default=0.3, help="share of photos and renders made harder")
    parser.add_argument("--thresholds", default="0.8,0.95", help="cascade thresholds on the image-type score")
    parser.add_argument("--paid-error", type=float, default=0.03)
    parser.add_argument("--price", type=float, default=1.0, help="paid backend, per 1,000 pictures")
    args = parser.parse_args()

    import logging

    import django

    django.setup()
    logging.getLogger("spotcheck.request").setLevel(logging.WARNING)
    from django.conf import settings
    from django.core.management import call_command

    from tests.fakes.azure import FakeAzureVision

    call_command("migrate", verbosity=0)
    made = pictures(args.per_kind, args.hard)
    thresholds = [float(t) for t in args.thresholds.split(",") if t.strip()]
    fake = FakeAzureVision(key="bench", responder=oracle(made, args.paid_error)).start()
    prices = {**settings.SPOTCHECK_PRICE_PER_1000, "azure": args.price}
    common = {
        "SPOTCHECK_AZURE_VISION_ENDPOINT": fake.endpoint,
        "SPOTCHECK_AZURE_VISION_KEY": "bench",
        "SPOTCHECK_PRICE_PER_1000": prices,
    }
    try:
        rows = [
            run("builtin only", "builtin", made, settings, common),
            run("paid only (fake Azure)", "azure", made, settings, common),
        ]
        for threshold in thresholds:
            extra = {**common, "SPOTCHECK_CASCADE_THRESHOLD": threshold}
            rows.append(run(f"cascade (type score < {threshold})", "cascade", made, settings, extra))
    finally:
        fake.stop()

    print(
        f"{len(made)} generated 640x480 pictures ({args.per_kind} per kind, {args.hard:.0%} of photos and renders "
        f"made harder); paid price {args.price:.2f} per 1,000;"
    )
    print(f"paid backend simulated: wrong on {args.paid_error:.0%} of pictures, Burgundy answered as Red")
    print(f"{'configuration':34} {'type':>7} {'colour':>7} {'to paid':>8} {'cost/1,000':>11}  calls")
    for row in rows:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(row["sent"].items()))
        print(
            f"{row['label']:34} {row['type']:7.1%} {row['color']:7.1%} {row['paid_share']:8.1%} "
            f"{row['cost_per_1000']:11.2f}  {calls}"
        )
    builtin, paid, *cascades = rows
    for cascade in cascades:
        saving = 1 - cascade["cost_per_1000"] / paid["cost_per_1000"] if paid["cost_per_1000"] else 0.0
        print(
            f"{cascade['label']}: cost {saving:.0%} below paid only (target: below); type accuracy "
            f"{cascade['type'] - builtin['type']:+.1%} vs builtin only (target: >= 0)"
        )


if __name__ == "__main__":
    main()
