"""Deterministic generated pictures for tests, demos and benchmarks: dealer photos, stock renders, placeholders.

Pillow only. The same (kind, colour, size, seed) always gives the same pixels, so tests and benchmarks are
repeatable. The pictures imitate the three image types the way they look on listing sites:

* ``dealer``: a photo-like scene (sky, buildings, trees, ground with texture), a shaded vehicle in the
  requested paint colour, slight blur and sensor noise — many tones everywhere.
* ``stock``: a computer-generated render: a flat-shaded vehicle with a soft shadow on a pure white
  background, a handful of tones.
* ``placeholder``: a flat card with "PHOTO COMING SOON"-style text and a small icon or logo, no vehicle.
"""

from __future__ import annotations

import io
import random
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from classification.vocabulary import Color

KINDS = ("dealer", "stock", "placeholder")

# What a vehicle painted that colour looks like in an evenly lit picture (sRGB). The classifier names
# colours with its own CIELAB prototypes; these are paint swatches, jittered per seed.
PAINT: dict[str, tuple[int, int, int]] = {
    Color.BLACK: (30, 30, 34),
    Color.BLUE: (28, 72, 165),
    Color.BROWN: (110, 72, 42),
    Color.BURGUNDY: (112, 22, 42),
    Color.GREEN: (36, 112, 58),
    Color.GREY: (126, 129, 133),
    Color.ORANGE: (232, 112, 24),
    Color.PINK: (236, 142, 178),
    Color.PURPLE: (102, 46, 138),
    Color.RED: (196, 28, 32),
    Color.WHITE: (236, 236, 238),
    Color.YELLOW: (242, 204, 34),
}

PLACEHOLDER_TEXTS = (
    ("PHOTO", "COMING SOON"),
    ("IMAGE", "NOT AVAILABLE"),
    ("NO PHOTO", "AVAILABLE"),
    ("PICTURES", "COMING SOON"),
)


def _rng(kind: str, color: str, seed: int) -> random.Random:
    # String seeds are hashed with SHA-512 by random.Random, so this is stable across processes.
    return random.Random(f"spotcheck-synthetic:{kind}:{color}:{seed}")


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def _scale(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, round(c * factor))) for c in rgb)  # type: ignore[return-value]


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _vertical_gradient(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    """A top-to-bottom gradient built from a 1-pixel-wide strip (fast at any size)."""
    width, height = size
    strip = Image.new("RGB", (1, 256))
    strip.putdata([_mix(top, bottom, i / 255) for i in range(256)])
    return strip.resize((width, height), Image.Resampling.BILINEAR)


@lru_cache(maxsize=8)
def _noise_tile(sigma: int, tile: int = 509) -> Image.Image:
    """Deterministic per-channel noise in [0, 2*sigma], tiled over pictures (509 px: no visible period)."""
    rng = random.Random(f"spotcheck-noise:{sigma}")
    data = rng.randbytes(tile * tile * 3)
    noise = Image.frombytes("RGB", (tile, tile), data)
    return noise.point(lambda v: v * 2 * sigma // 255)


def _add_noise(image: Image.Image, sigma: int) -> Image.Image:
    tile = _noise_tile(sigma)
    noise = Image.new("RGB", image.size)
    for x in range(0, image.width, tile.width):
        for y in range(0, image.height, tile.height):
            noise.paste(tile, (x, y))
    return ImageChops.add(image, noise, scale=1.0, offset=-sigma)


def _vehicle_shapes(box: tuple[float, float, float, float], rng: random.Random, facing_left: bool) -> dict:
    """Polygons of a side-view vehicle inside ``box`` (x, y, width, height): body, cabin, windows, wheels."""
    x, y, w, h = box
    roof = rng.uniform(0.05, 0.18)  # taller cabins for SUVs, lower for coupés
    front = rng.uniform(0.12, 0.22)
    rear = rng.uniform(0.12, 0.2)

    def px(fx: float) -> float:
        return x + (1 - fx) * w if facing_left else x + fx * w

    def pt(fx: float, fy: float) -> tuple[float, float]:
        return (px(fx), y + fy * h)

    belt = 0.48
    body = [pt(0.0, 0.62), pt(0.02, belt), pt(front, belt - 0.04), pt(1 - rear, belt - 0.06), pt(0.99, belt)]
    body += [pt(1.0, 0.66), pt(0.98, 0.86), pt(0.02, 0.86)]
    cabin = [pt(0.2, belt - 0.03), pt(0.33, roof), pt(0.7, roof), pt(0.84, belt - 0.05)]
    inset = 0.04
    windows = [
        [pt(0.24, belt - 0.05), pt(0.35, roof + inset), pt(0.5, roof + inset), pt(0.5, belt - 0.05)],
        [pt(0.53, belt - 0.05), pt(0.53, roof + inset), pt(0.68, roof + inset), pt(0.79, belt - 0.06)],
    ]
    radius = 0.105 * w
    wheels = [(px(0.21), y + 0.86 * h, radius), (px(0.79), y + 0.86 * h, radius)]
    lights = [
        [pt(0.005, 0.55), pt(0.06, 0.55), pt(0.06, 0.6), pt(0.005, 0.6)],
        [pt(0.95, 0.54), pt(0.995, 0.54), pt(0.995, 0.59), pt(0.95, 0.59)],
    ]
    return {"body": body, "cabin": cabin, "windows": windows, "wheels": wheels, "lights": lights}


def _draw_vehicle(canvas: Image.Image, box, paint: tuple[int, int, int], rng: random.Random, *, photo: bool) -> None:
    """Paint a vehicle: flat tones for a render, a lit gradient body with reflections for a photo."""
    x, y, w, h = box
    shapes = _vehicle_shapes(box, rng, facing_left=rng.random() < 0.5)
    mask = Image.new("L", canvas.size, 0)
    mdraw = ImageDraw.Draw(mask)
    mdraw.polygon(shapes["body"], fill=255)
    mdraw.polygon(shapes["cabin"], fill=255)
    if photo:
        # Light from above: the upper panels catch the sky, the sills fall into shade.
        body = _vertical_gradient(canvas.size, _scale(paint, 1.08), _scale(paint, 0.86))
        body = _mix_images(body, _mix(paint, (255, 255, 255), 0.12), y + 0.5 * h, y + 0.56 * h, canvas.size)
    else:
        body = Image.new("RGB", canvas.size, paint)
    canvas.paste(body, (0, 0), mask)
    draw = ImageDraw.Draw(canvas)
    if not photo:
        # A render's shading is a few flat bands: a darker sill and a lighter shoulder line.
        draw.rectangle([x + 0.03 * w, y + 0.76 * h, x + 0.97 * w, y + 0.85 * h], fill=_scale(paint, 0.8))
        draw.rectangle([x + 0.1 * w, y + 0.5 * h, x + 0.9 * w, y + 0.525 * h], fill=_mix(paint, (255,) * 3, 0.25))
    glass = (52, 60, 72) if photo else (70, 82, 96)
    for window in shapes["windows"]:
        draw.polygon(window, fill=_jitter(glass, rng, 6))
    for lamp in shapes["lights"]:
        draw.polygon(lamp, fill=(235, 225, 190) if photo else (220, 220, 220))
    for cx, cy, r in shapes["wheels"]:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(22, 22, 24))
        rim = r * 0.55
        draw.ellipse([cx - rim, cy - rim, cx + rim, cy + rim], fill=(150, 152, 158) if photo else (185, 185, 190))
        hub = r * 0.15
        draw.ellipse([cx - hub, cy - hub, cx + hub, cy + hub], fill=(90, 90, 95))


def _mix_images(base: Image.Image, tone, y0: float, y1: float, size) -> Image.Image:
    """A horizontal reflection band of ``tone`` over ``base`` between y0 and y1."""
    band = Image.new("L", size, 0)
    ImageDraw.Draw(band).rectangle([0, y0, size[0], y1], fill=150)
    band = band.filter(ImageFilter.GaussianBlur(max(1, (y1 - y0) / 3)))
    return Image.composite(Image.new("RGB", size, tone), base, band)


def _dealer(color: str, width: int, height: int, rng: random.Random) -> Image.Image:
    sky_top = _jitter((110, 160, 215), rng, 20)
    sky_bottom = _jitter((190, 210, 230), rng, 12)
    canvas = _vertical_gradient((width, height), sky_top, sky_bottom)
    draw = ImageDraw.Draw(canvas)
    horizon = height * rng.uniform(0.45, 0.58)
    unit = width / 100
    for _ in range(rng.randint(2, 5)):  # clouds
        cx, cy = rng.uniform(0, width), rng.uniform(0, horizon * 0.6)
        for _ in range(6):
            rx, ry = rng.uniform(3, 9) * unit, rng.uniform(1.5, 3.5) * unit
            dx, dy = rng.uniform(-6, 6) * unit, rng.uniform(-1.5, 1.5) * unit
            draw.ellipse(
                [cx + dx - rx, cy + dy - ry, cx + dx + rx, cy + dy + ry], fill=_jitter((232, 236, 240), rng, 8)
            )
    facades = [(168, 150, 126), (140, 110, 90), (190, 180, 165), (120, 124, 130), (160, 80, 60), (210, 200, 180)]
    xpos = -rng.uniform(0, 10) * unit
    while xpos < width:  # buildings with window grids along the horizon
        bw, bh = rng.uniform(10, 28) * unit, rng.uniform(8, 30) * unit
        tone = _jitter(rng.choice(facades), rng, 14)
        draw.rectangle([xpos, horizon - bh, xpos + bw, horizon], fill=tone)
        step = rng.uniform(2.2, 3.5) * unit
        wy = horizon - bh + step * 0.5
        while wy < horizon - step:
            wx = xpos + step * 0.4
            while wx < xpos + bw - step * 0.6:
                draw.rectangle([wx, wy, wx + step * 0.5, wy + step * 0.55], fill=_jitter((70, 80, 95), rng, 25))
                wx += step
            wy += step
        xpos += bw + rng.uniform(0, 4) * unit
    for _ in range(rng.randint(4, 9)):  # trees
        cx, cy = rng.uniform(0, width), horizon - rng.uniform(0, 6) * unit
        for _ in range(10):
            r = rng.uniform(2, 6) * unit
            dx, dy = rng.uniform(-5, 5) * unit, rng.uniform(-8, 2) * unit
            draw.ellipse([cx + dx - r, cy + dy - r, cx + dx + r, cy + dy + r], fill=_jitter((60, 95, 50), rng, 22))
    ground = rng.choice(
        [((96, 96, 100), (70, 70, 74)), ((150, 146, 138), (118, 114, 108)), ((84, 90, 86), (60, 62, 60))]
    )
    canvas.paste(_vertical_gradient((width, height - int(horizon)), *ground), (0, int(horizon)))
    for _ in range(int(60 * width / 1024)):  # cracks, stains and markings in the asphalt
        gx, gy = rng.uniform(0, width), rng.uniform(horizon, height)
        length = rng.uniform(2, 14) * unit
        tone = _jitter(rng.choice([(50, 50, 52), (130, 130, 128), (200, 195, 170)]), rng, 15)
        draw.line([gx, gy, gx + length, gy + rng.uniform(-1, 1) * unit], fill=tone, width=max(1, int(unit * 0.4)))
    # Listing photos frame the vehicle tightly: it fills most of the width, wheels in the lower fifth.
    vw = min(width * rng.uniform(0.7, 0.86), height * 1.9)
    vh = vw * rng.uniform(0.36, 0.44)
    vx = (width - vw) / 2 + rng.uniform(-3, 3) * unit
    vy = height * rng.uniform(0.82, 0.9) - vh * 0.97
    shadow = [vx + 0.02 * vw, vy + 0.82 * vh, vx + 0.98 * vw, vy + 1.0 * vh]
    draw.ellipse(shadow, fill=(38, 38, 40))
    _draw_vehicle(canvas, (vx, vy, vw, vh), _jitter(PAINT[color], rng, 8), rng, photo=True)
    canvas = canvas.filter(ImageFilter.GaussianBlur(max(0.6, width / 1400)))
    # Real scenes vary at every scale (uneven light, dirt, texture), not only pixel by pixel: a coarse
    # mottle under the sensor noise.
    mottle = (
        _noise_tile(10)
        .resize((max(2, width // 48), max(2, height // 48)))
        .resize((width, height), Image.Resampling.BICUBIC)
    )
    canvas = ImageChops.add(canvas, mottle, scale=1.0, offset=-10)
    return _add_noise(canvas, sigma=12)


def _stock(color: str, width: int, height: int, rng: random.Random) -> Image.Image:
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    vw = width * rng.uniform(0.7, 0.84)
    vh = vw * rng.uniform(0.36, 0.44)
    vx = (width - vw) / 2
    vy = (height - vh) / 2 + rng.uniform(-0.03, 0.05) * height
    shadow = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(shadow).ellipse([vx - 0.02 * vw, vy + 0.8 * vh, vx + 1.02 * vw, vy + 0.97 * vh], fill=70)
    shadow = shadow.filter(ImageFilter.GaussianBlur(width / 120))
    canvas.paste((120, 120, 124), (0, 0), shadow)
    del draw
    _draw_vehicle(canvas, (vx, vy, vw, vh), _jitter(PAINT[color], rng, 6), rng, photo=False)
    # Renders are anti-aliased: soften the polygon edges a little, nothing more.
    return canvas.filter(ImageFilter.GaussianBlur(max(0.5, width / 2048)))


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _placeholder(color: str, width: int, height: int, rng: random.Random) -> Image.Image:
    paint = PAINT[color]
    style = rng.randrange(4)
    if style == 0:  # white card, grey text, logo disc in the brand colour
        background, ink, accent = (255, 255, 255), (120, 120, 125), paint
    elif style == 1:  # light grey card
        background, ink, accent = _jitter((228, 228, 230), rng, 6), (90, 90, 96), paint
    elif style == 2:  # dark card, white text
        background, ink, accent = _jitter((44, 46, 52), rng, 6), (235, 235, 235), paint
    else:  # a card in the dealer's colour, white text
        background, ink, accent = paint, (250, 250, 250), (250, 250, 250)
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    lines = rng.choice(PLACEHOLDER_TEXTS)
    big = _font(max(10, int(height * 0.085)))
    small = _font(max(8, int(height * 0.05)))
    # A camera outline above the text.
    cx, cy, s = width / 2, height * 0.3, height * 0.11
    stroke = max(2, int(height / 150))
    draw.rounded_rectangle([cx - s, cy - 0.65 * s, cx + s, cy + 0.65 * s], radius=s * 0.2, outline=ink, width=stroke)
    draw.ellipse([cx - 0.38 * s, cy - 0.38 * s, cx + 0.38 * s, cy + 0.38 * s], outline=ink, width=stroke)
    draw.rectangle([cx - 0.45 * s, cy - 0.85 * s, cx - 0.05 * s, cy - 0.65 * s], fill=ink)
    draw.text((width / 2, height * 0.52), lines[0], font=big, fill=ink, anchor="mm")
    draw.text((width / 2, height * 0.64), lines[1], font=small, fill=ink, anchor="mm")
    # A small dealer logo in a corner.
    r = height * 0.045
    lx, ly = rng.choice([(width * 0.08, height * 0.1), (width * 0.92, height * 0.9), (width * 0.08, height * 0.9)])
    draw.ellipse([lx - r, ly - r, lx + r, ly + r], fill=accent)
    return canvas


def picture(*, kind: str, color: str, width: int = 1024, height: int = 768, seed: int = 0) -> Image.Image:
    """A generated RGB picture of ``kind`` ("dealer", "stock", "placeholder") in paint ``color``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if color not in PAINT:
        raise ValueError(f"unknown colour {color!r}; expected one of {', '.join(PAINT)}")
    if width < 16 or height < 16:
        raise ValueError("pictures must be at least 16×16")
    rng = _rng(kind, color, seed)
    make = {"dealer": _dealer, "stock": _stock, "placeholder": _placeholder}[kind]
    return make(color, width, height, rng)


def picture_bytes(
    *,
    kind: str,
    color: str,
    width: int = 1024,
    height: int = 768,
    seed: int = 0,
    fmt: str = "JPEG",
    quality: int = 85,
) -> bytes:
    """The same picture encoded (JPEG by default; PNG, WEBP and GIF also work)."""
    image = picture(kind=kind, color=color, width=width, height=height, seed=seed)
    buffer = io.BytesIO()
    options = {"quality": quality} if fmt.upper() in {"JPEG", "WEBP"} else {}
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
