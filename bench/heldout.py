"""The held-out image-type set: pictures of the three types made NOT the way the default heads' training
pictures are made, so that accuracy on them says something about pictures nobody here has seen.

* Dealer: real photographs bundled with scikit-image and scikit-learn (BSD-3; their own licences in
  ``skimage/data/README.txt`` and ``sklearn/datasets/images/README.txt``), whole and cropped, some turned
  greyscale, at sizes up to 4163x3330. The learned heads are never trained or calibrated on them.
* Stock: renders drawn here, in another style than ``classification.synthetic``: a three-quarter view with a
  visible front face, smoothly shaded panels, on a white or a studio (grey sweep) background, supersampled.
* Placeholder: "no photo" cards with other wording, layouts (car silhouette, crossed-out picture, frames,
  gradients) and the system's TrueType fonts (DejaVu, Liberation, Noto) instead of Pillow's bundled one.

Every picture is encoded as JPEG, PNG or WebP. Deterministic: the same call gives the same bytes.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

# Files inside the scikit-image wheel (skimage/data/), read directly: no download.
PHOTOS_SKIMAGE = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "camera.png",
    "coins.png",
    "moon.png",
    "brick.png",
    "grass.png",
    "gravel.png",
)
SIZES = ((4163, 3330), (1024, 768), (800, 600), (640, 480), (480, 360))
FORMATS = ("JPEG", "PNG", "WEBP")
FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Italic.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansMono-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Oblique.ttf",
)
TEXTS = (
    ("NO IMAGE", "AVAILABLE"),
    ("Image coming soon", ""),
    ("Photos to follow", "Call the dealer"),
    ("Vehicle photo", "unavailable"),
    ("COMING SOON", "pictures of this car"),
)
PAINT_NAMES = {
    (180, 20, 30): "Red",
    (20, 60, 140): "Blue",
    (230, 230, 232): "White",
    (25, 25, 28): "Black",
    (120, 122, 126): "Grey",
    (200, 170, 40): "Yellow",
    (30, 110, 70): "Green",
}
PAINTS = tuple(PAINT_NAMES)


def _photos() -> list[tuple[str, Image.Image]]:
    import skimage
    import sklearn

    folder = Path(skimage.__file__).parent / "data"
    paths = [folder / name for name in PHOTOS_SKIMAGE]
    paths += sorted((Path(sklearn.__file__).parent / "datasets" / "images").glob("*.jpg"))  # china, flower
    return [(path.stem, Image.open(path).convert("RGB")) for path in paths]


def _encode(picture: Image.Image, fmt: str, rng: random.Random) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": rng.choice((75, 85, 92))} if fmt in ("JPEG", "WEBP") else {}
    picture.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _fit(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    return ImageOps.fit(picture, size, Image.Resampling.LANCZOS)


def _dealer(rng: random.Random, photos, index: int) -> tuple[str, Image.Image]:
    name, photo = photos[index % len(photos)]
    if rng.random() < 0.5:  # a crop: another part of the scene
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.55, 0.85)), int(h * rng.uniform(0.55, 0.85))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        photo = photo.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.25:
        photo = photo.convert("L").convert("RGB")
    return name, photo


def _studio(size: tuple[int, int], rng: random.Random) -> Image.Image:
    h = size[1]
    if rng.random() < 0.5:
        return Image.new("RGB", size, (255, 255, 255))
    top, floor = rng.randint(200, 245), rng.randint(150, 215)
    horizon = int(h * rng.uniform(0.55, 0.7))
    strip = Image.new("L", (1, h))
    strip.putdata([round(top + (floor - top) * min(1.0, max(0.0, (y - horizon) / (h * 0.15) + 0.5))) for y in range(h)])
    return strip.resize(size).convert("RGB")


def _render(rng: random.Random) -> tuple[Image.Image, str]:
    """A three-quarter-view car, panels shaded by smooth gradients, supersampled 2x for anti-aliasing; and
    the name of its paint."""
    out_size = (1024, 768)
    w, h = out_size[0] * 2, out_size[1] * 2
    canvas = _studio((w, h), rng)
    paint = rng.choice(PAINTS)
    s = rng.uniform(0.8, 1.1) * w / 2.4
    cx, cy = w / 2 + rng.uniform(-0.05, 0.05) * w, h * rng.uniform(0.55, 0.62)
    # ground shadow
    shadow = Image.new("L", (w, h), 0)
    ImageDraw.Draw(shadow).ellipse([cx - 1.15 * s, cy + 0.25 * s, cx + 1.1 * s, cy + 0.55 * s], fill=120)
    shadow = shadow.filter(ImageFilter.GaussianBlur(s / 14))
    canvas.paste((60, 60, 64), (0, 0), shadow)

    def shade(polygon, base, light_top: float, light_bottom: float):
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).polygon(polygon, fill=255)
        ys = [p[1] for p in polygon]
        y0, y1 = min(ys), max(ys)
        strip = Image.new("RGB", (1, h))
        strip.putdata(
            [
                tuple(
                    max(
                        0,
                        min(
                            255,
                            round(
                                c
                                * (light_top + (light_bottom - light_top) * min(1, max(0, (y - y0) / max(1, y1 - y0))))
                            ),
                        ),
                    )
                    for c in base
                )
                for y in range(h)
            ]
        )
        canvas.paste(strip.resize((w, h)), (0, 0), mask)

    # side panel (long), front face (short, in perspective), roof/cabin, glass
    side = [
        (cx - 1.1 * s, cy - 0.05 * s),
        (cx + 0.45 * s, cy - 0.12 * s),
        (cx + 0.5 * s, cy + 0.35 * s),
        (cx - 1.05 * s, cy + 0.35 * s),
    ]
    front = [
        (cx + 0.45 * s, cy - 0.12 * s),
        (cx + 1.05 * s, cy - 0.02 * s),
        (cx + 1.0 * s, cy + 0.38 * s),
        (cx + 0.5 * s, cy + 0.35 * s),
    ]
    hood = [
        (cx + 0.05 * s, cy - 0.3 * s),
        (cx + 0.45 * s, cy - 0.12 * s),
        (cx + 1.05 * s, cy - 0.02 * s),
        (cx + 0.7 * s, cy - 0.22 * s),
    ]
    cabin = [
        (cx - 0.85 * s, cy - 0.07 * s),
        (cx - 0.55 * s, cy - 0.55 * s),
        (cx - 0.05 * s, cy - 0.6 * s),
        (cx + 0.25 * s, cy - 0.28 * s),
        (cx + 0.45 * s, cy - 0.12 * s),
    ]
    shade(side, paint, 1.15, 0.7)
    shade(front, paint, 1.0, 0.6)
    shade(hood, paint, 1.3, 1.05)
    shade(cabin, paint, 1.1, 0.9)
    glass = [
        (cx - 0.75 * s, cy - 0.1 * s),
        (cx - 0.52 * s, cy - 0.5 * s),
        (cx - 0.08 * s, cy - 0.54 * s),
        (cx + 0.18 * s, cy - 0.27 * s),
        (cx + 0.3 * s, cy - 0.14 * s),
    ]
    shade(glass, (70, 90, 110), 1.6, 0.7)
    draw = ImageDraw.Draw(canvas)
    draw.line([(cx - 0.35 * s, cy - 0.55 * s), (cx - 0.3 * s, cy - 0.1 * s)], fill=paint, width=int(s / 30))  # pillar
    lamp = [
        (cx + 0.6 * s, cy + 0.02 * s),
        (cx + 0.95 * s, cy + 0.06 * s),
        (cx + 0.95 * s, cy + 0.12 * s),
        (cx + 0.6 * s, cy + 0.08 * s),
    ]
    draw.polygon(lamp, fill=(240, 240, 235))
    for wx, rx in ((cx - 0.7 * s, 0.2 * s), (cx + 0.25 * s, 0.2 * s), (cx + 0.82 * s, 0.12 * s)):
        wy = cy + 0.33 * s
        draw.ellipse([wx - rx, wy - 0.2 * s, wx + rx, wy + 0.2 * s], fill=(20, 20, 22))
        draw.ellipse([wx - rx * 0.6, wy - 0.12 * s, wx + rx * 0.6, wy + 0.12 * s], fill=(175, 178, 185))
    return canvas.resize(out_size, Image.Resampling.LANCZOS), PAINT_NAMES[paint]


def _font(rng: random.Random, size: int):
    path = rng.choice(FONT_FILES)
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return ImageFont.load_default(size=size)


def _card(rng: random.Random) -> Image.Image:
    w, h = rng.choice(((800, 600), (1024, 768), (640, 480), (1200, 900)))
    style = rng.randrange(4)
    if style == 0:
        background, ink = (255, 255, 255), (60, 60, 60)
        canvas = Image.new("RGB", (w, h), background)
    elif style == 1:  # vertical gradient
        top, bottom = rng.choice((((235, 240, 245), (200, 210, 220)), ((50, 50, 60), (20, 20, 25))))
        ink = (30, 30, 30) if sum(top) > 400 else (240, 240, 240)
        strip = Image.new("RGB", (1, 256))
        strip.putdata(
            [tuple(round(a + (b - a) * i / 255) for a, b in zip(top, bottom, strict=True)) for i in range(256)]
        )
        canvas = strip.resize((w, h))
    elif style == 2:
        canvas, ink = Image.new("RGB", (w, h), rng.choice(PAINTS)), (255, 255, 255)
    else:  # framed
        canvas, ink = Image.new("RGB", (w, h), (245, 245, 240)), (90, 90, 90)
        ImageDraw.Draw(canvas).rectangle([w * 0.04, h * 0.04, w * 0.96, h * 0.96], outline=ink, width=max(2, w // 200))
    draw = ImageDraw.Draw(canvas)
    icon = rng.randrange(3)
    ix, iy, s = w / 2, h * 0.32, h * 0.14
    stroke = max(2, h // 120)
    if icon == 0:  # a car silhouette outline
        body = [
            (ix - 1.6 * s, iy + 0.4 * s),
            (ix - 1.5 * s, iy),
            (ix - 0.7 * s, iy - 0.1 * s),
            (ix - 0.3 * s, iy - 0.6 * s),
        ]
        body += [
            (ix + 0.6 * s, iy - 0.6 * s),
            (ix + 1.1 * s, iy - 0.05 * s),
            (ix + 1.6 * s, iy + 0.05 * s),
            (ix + 1.6 * s, iy + 0.4 * s),
        ]
        draw.line([*body, body[0]], fill=ink, width=stroke)
        for wx in (ix - 0.9 * s, ix + 0.9 * s):
            draw.ellipse([wx - 0.3 * s, iy + 0.15 * s, wx + 0.3 * s, iy + 0.75 * s], outline=ink, width=stroke)
    elif icon == 1:  # a crossed-out picture
        draw.rectangle([ix - s, iy - 0.7 * s, ix + s, iy + 0.7 * s], outline=ink, width=stroke)
        draw.polygon(
            [(ix - 0.8 * s, iy + 0.5 * s), (ix - 0.2 * s, iy - 0.2 * s), (ix + 0.2 * s, iy + 0.2 * s)], outline=ink
        )
        draw.line([(ix - 1.2 * s, iy + 0.9 * s), (ix + 1.2 * s, iy - 0.9 * s)], fill=ink, width=stroke * 2)
    line1, line2 = rng.choice(TEXTS)
    draw.text((w / 2, h * 0.6), line1, font=_font(rng, int(h * rng.uniform(0.07, 0.1))), fill=ink, anchor="mm")
    if line2:
        draw.text((w / 2, h * 0.72), line2, font=_font(rng, int(h * 0.05)), fill=ink, anchor="mm")
    return canvas


def heldout_set(*, per_type: int = 40, seed: int = 0) -> list[tuple[str, str | None, str, bytes]]:
    """(image type, colour or None, description, encoded bytes) for ``per_type`` pictures of each type.
    Only the renders have a known colour (the photos are not of vehicles, the cards show none)."""
    rng = random.Random(f"spotcheck-heldout:{seed}")
    photos = _photos()
    out: list[tuple[str, str | None, str, bytes]] = []
    for i in range(per_type):
        name, photo = _dealer(rng, photos, i)
        size, fmt = SIZES[i % len(SIZES)], rng.choice(FORMATS)
        out.append(("Dealer", None, f"photo {name} {size[0]}x{size[1]} {fmt}", _encode(_fit(photo, size), fmt, rng)))
        size, fmt = SIZES[(i + 2) % len(SIZES)], rng.choice(FORMATS)
        render, color = _render(rng)
        out.append(("Stock", color, f"render {size[0]}x{size[1]} {fmt}", _encode(_fit(render, size), fmt, rng)))
        card, fmt = _card(rng), rng.choice(FORMATS)
        out.append(("Placeholder", None, f"card {card.width}x{card.height} {fmt}", _encode(card, fmt, rng)))
    return out
