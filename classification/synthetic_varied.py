"""A more varied generator for training the default heads (``classification.default_heads``).

``classification.synthetic`` draws one kind of scene per type; a head trained on it alone learns "the
cartoon street is a photo, anything else is a card". Here each type varies along the axes real listing
pictures vary along, without imitating any particular held-out picture:

* ``dealer``: a synthetic street scene re-framed (zoomed crop, mirrored), re-lit (exposure, contrast, colour
  cast, night), sometimes greyscale; or a procedural natural scene (multi-scale value noise mapped through a
  palette of natural tones, soft out-of-focus blobs, a light gradient, sensor noise), with or without a
  vehicle. Many tones, texture at every scale.
* ``stock``: the synthetic render at other scales and positions, mirrored, on white or a light even
  backdrop, anti-aliased, with a soft shadow: few tones, clean edges.
* ``placeholder``: the synthetic cards, and cards in more layouts: text alone, icon alone, both, frames,
  two-tone and gradient backgrounds, Pillow's bundled font at several sizes.

Pillow + the standard library only; deterministic per (kind, seed, size). Pictures and code are part of
this repository (same licence as the project).
"""

from __future__ import annotations

import random

from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from classification import synthetic

KINDS = synthetic.KINDS
COLORS = tuple(synthetic.PAINT)


def _rng(kind: str, seed: int) -> random.Random:
    return random.Random(f"spotcheck-varied:{kind}:{seed}")


def _value_noise(size: tuple[int, int], rng: random.Random, octaves: int = 5) -> Image.Image:
    """Greyscale multi-scale noise (coarse blobs to fine grain), like the texture of natural scenes."""
    out = Image.new("L", size, 128)
    weight = 0.5
    for octave in range(octaves):
        cells = 2 ** (octave + 1)
        small = Image.frombytes("L", (cells + 1, cells + 1), rng.randbytes((cells + 1) ** 2))
        layer = small.resize(size, Image.Resampling.BICUBIC)
        out = Image.blend(out, layer, weight)
        weight *= 0.6
    return ImageOps.autocontrast(out, cutoff=1)


def _palette_map(grey: Image.Image, colors: list[tuple[int, int, int]]) -> Image.Image:
    """Map grey levels through a gradient of ``colors``."""
    stops = len(colors) - 1
    lut = []
    for v in range(256):
        t = v / 255 * stops
        i = min(int(t), stops - 1)
        f = t - i
        lut.append(tuple(round(a + (b - a) * f) for a, b in zip(colors[i], colors[i + 1], strict=True)))
    r, g, b = (grey.point([c[k] for c in lut]) for k in range(3))
    return Image.merge("RGB", (r, g, b))


NATURAL = (
    [(30, 45, 25), (70, 100, 45), (140, 160, 90), (200, 210, 170)],  # foliage
    [(40, 35, 30), (110, 95, 80), (170, 160, 145), (225, 220, 210)],  # stone, gravel
    [(20, 30, 60), (60, 90, 140), (150, 180, 210), (235, 240, 245)],  # sky, water
    [(35, 20, 15), (120, 70, 40), (190, 140, 90), (240, 215, 180)],  # wood, skin, warm interior
    [(15, 15, 18), (70, 70, 75), (150, 150, 155), (230, 230, 232)],  # asphalt, concrete
)


def _natural(width: int, height: int, rng: random.Random) -> tuple[Image.Image, str | None]:
    picture = _palette_map(_value_noise((width, height), rng), rng.choice(NATURAL))
    if rng.random() < 0.6:  # a second material over part of the frame (ground under sky, a wall...)
        other = _palette_map(_value_noise((width, height), rng), rng.choice(NATURAL))
        mask = _value_noise((width, height), rng, octaves=2).point(lambda v: 255 if v > 128 else 0)
        picture = Image.composite(other, picture, mask.filter(ImageFilter.GaussianBlur(width / 80)))
    draw = ImageDraw.Draw(picture)
    for _ in range(rng.randint(0, 12)):  # out-of-focus highlights and objects
        r = rng.uniform(0.01, 0.08) * width
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        tone = tuple(rng.randint(20, 250) for _ in range(3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tone)
    picture = picture.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5) * width / 640))
    color = None
    if rng.random() < 0.5:  # a vehicle in the scene
        color = rng.choice(COLORS)
        paint = synthetic.PAINT[color]
        vw = width * rng.uniform(0.4, 0.8)
        vh = vw * 0.4
        box = (rng.uniform(0, width - vw), rng.uniform(height * 0.3, height - vh), vw, vh)
        synthetic._draw_vehicle(picture, box, paint, rng, photo=True)
        picture = picture.filter(ImageFilter.GaussianBlur(0.6))
    return picture, color


def _relight(picture: Image.Image, rng: random.Random) -> Image.Image:
    picture = ImageEnhance.Brightness(picture).enhance(rng.uniform(0.45, 1.3))
    picture = ImageEnhance.Contrast(picture).enhance(rng.uniform(0.7, 1.4))
    picture = ImageEnhance.Color(picture).enhance(rng.uniform(0.5, 1.4))
    if rng.random() < 0.4:  # a colour cast (white balance, tinted light)
        cast = Image.new("RGB", picture.size, tuple(rng.randint(90, 255) for _ in range(3)))
        picture = Image.blend(picture, ImageChops.multiply(picture, cast), rng.uniform(0.2, 0.6))
    return picture


def _sensor_noise(picture: Image.Image, rng: random.Random) -> Image.Image:
    sigma = rng.choice((3, 6, 10, 16))
    return synthetic._add_noise(picture, sigma)


def _dealer(width: int, height: int, rng: random.Random, seed: int) -> tuple[Image.Image, str | None]:
    if rng.random() < 0.5:
        color: str | None = rng.choice(COLORS)
        scene = synthetic.picture(kind="dealer", color=color, width=width, height=height, seed=seed)
        zoom = rng.uniform(0.45, 1.0)
        cw, ch = int(width * zoom), int(height * zoom)
        x, y = rng.randint(0, width - cw), rng.randint(0, height - ch)
        picture = scene.crop((x, y, x + cw, y + ch)).resize((width, height), Image.Resampling.BICUBIC)
    else:
        picture, color = _natural(width, height, rng)
    if rng.random() < 0.5:
        picture = ImageOps.mirror(picture)
    picture = _sensor_noise(_relight(picture, rng), rng)
    if rng.random() < 0.25:
        picture, color = picture.convert("L").convert("RGB"), None  # greyscale: the paint is unknowable
    return picture, color


def _stock(width: int, height: int, rng: random.Random, seed: int) -> tuple[Image.Image, str | None]:
    color = rng.choice(COLORS)
    render = synthetic.picture(kind="stock", color=color, width=width, height=height, seed=seed)
    scale = rng.uniform(0.6, 1.05)
    small = render.resize((max(16, int(width * scale)), max(16, int(height * scale))), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        small = ImageOps.mirror(small)
    if rng.random() < 0.35:  # a light, even backdrop instead of pure white
        tone = rng.randint(225, 250)
        backdrop = Image.new("RGB", (width, height), (tone, tone, min(255, tone + rng.randint(0, 5))))
    else:
        backdrop = Image.new("RGB", (width, height), (255, 255, 255))
    # The render's own white becomes the backdrop's tone: multiply keeps the car and its shadow.
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(
        small, ((width - small.width) // 2 + rng.randint(-width // 20, width // 20), (height - small.height) // 2)
    )
    return ImageChops.multiply(canvas, backdrop), color


def _placeholder(width: int, height: int, rng: random.Random, seed: int) -> tuple[Image.Image, str | None]:
    if rng.random() < 0.4:
        card = synthetic.picture(kind="placeholder", color=rng.choice(COLORS), width=width, height=height, seed=seed)
        return card, None
    light = rng.random() < 0.6
    base = tuple(rng.randint(215, 255) for _ in range(3)) if light else tuple(rng.randint(20, 120) for _ in range(3))
    ink = tuple(rng.randint(40, 130) for _ in range(3)) if light else (240, 240, 240)
    canvas = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(canvas)
    if rng.random() < 0.4:  # a two-tone or gradient background
        other = tuple(max(0, min(255, c + rng.randint(-40, 40))) for c in base)
        canvas = synthetic._vertical_gradient((width, height), base, other)
        draw = ImageDraw.Draw(canvas)
    if rng.random() < 0.3:
        m = rng.uniform(0.02, 0.08)
        draw.rectangle(
            [width * m, height * m, width * (1 - m), height * (1 - m)], outline=ink, width=max(1, height // 150)
        )
    layout = rng.randrange(3)  # text only, icon only, both
    if layout != 0:
        s = height * rng.uniform(0.08, 0.16)
        cx, cy = width * rng.uniform(0.4, 0.6), height * (0.3 if layout == 2 else 0.5)
        if rng.random() < 0.5:
            draw.rounded_rectangle([cx - s, cy - 0.7 * s, cx + s, cy + 0.7 * s], radius=s * 0.2, outline=ink, width=3)
            draw.ellipse([cx - 0.4 * s, cy - 0.4 * s, cx + 0.4 * s, cy + 0.4 * s], outline=ink, width=3)
        else:
            draw.regular_polygon((cx, cy, s), rng.randint(3, 8), fill=ink if rng.random() < 0.5 else None, outline=ink)
    if layout != 1:
        lines = rng.choice(synthetic.PLACEHOLDER_TEXTS)
        size = max(10, int(height * rng.uniform(0.05, 0.11)))
        y = height * (0.58 if layout == 2 else 0.45)
        draw.text((width / 2, y), lines[0], font=synthetic._font(size), fill=ink, anchor="mm")
        draw.text((width / 2, y + size * 1.4), lines[1], font=synthetic._font(int(size * 0.6)), fill=ink, anchor="mm")
    return canvas, None


def picture(*, kind: str, width: int = 480, height: int = 360, seed: int = 0) -> tuple[Image.Image, str | None]:
    """A generated RGB picture of ``kind`` ("dealer", "stock", "placeholder"), varied by ``seed``, and the
    colour of the vehicle in it (None when there is none, or it is greyscale)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    make = {"dealer": _dealer, "stock": _stock, "placeholder": _placeholder}[kind]
    return make(width, height, _rng(kind, seed), seed)
