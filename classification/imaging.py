"""Turning untrusted bytes into a small working picture: format and pixel checks before decoding, JPEG
DCT-scaled decoding, EXIF orientation, the stored thumbnail, and the 64-bit perceptual hash.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from django.conf import settings
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from classification.models import FetchError

# JPEG, PNG, WebP and GIF only: every other decoder Pillow ships is attack surface we do not need.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
THUMBNAIL_SIDE = 800
THUMBNAIL_QUALITY = 82

# A truncated file is an error, not a half-grey picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageRejected(Exception):
    """Bytes that are not a picture we accept; ``reason`` is a ``FetchError`` value."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = str(reason)
        self.detail = detail


@dataclass
class Decoded:
    """A decoded picture: ``picture`` is RGB, upright and at most ``THUMBNAIL_SIDE`` on its long side: the
    stored thumbnail's pixels. The classifier, the perceptual hash and the thumbnail all work on it, as
    reclassification, evaluation and training do on the decoded thumbnail: one picture for every use."""

    picture: Image.Image
    width: int  # of the original, upright
    height: int
    format: str


def _max_pixels() -> int:
    return settings.SPOTCHECK_MAX_PIXELS


def _open(data: bytes, limit: int) -> Image.Image:
    if not data:
        raise ImageRejected(FetchError.NOT_AN_IMAGE, "empty body")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageRejected(FetchError.NOT_AN_IMAGE, "not a JPEG, PNG, WebP or GIF") from None
    except Image.DecompressionBombError as exc:
        raise ImageRejected(FetchError.TOO_MANY_PIXELS, str(exc)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected(FetchError.BAD_IMAGE, str(exc)) from None
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise ImageRejected(FetchError.BAD_IMAGE, "empty picture")
    if width * height > limit:
        image.close()
        raise ImageRejected(FetchError.TOO_MANY_PIXELS, f"{width}x{height} is more than {limit} pixels")
    return image


def probe(data: bytes, *, max_pixels: int | None = None) -> tuple[int, int, str]:
    """Width, height (upright) and format from the header alone; the same refusals as ``decode``."""
    image = _open(data, max_pixels or _max_pixels())
    try:
        width, height = image.size
        if _orientation(image) in (5, 6, 7, 8):
            width, height = height, width
        return width, height, image.format or ""
    finally:
        image.close()


def decode(data: bytes, *, max_pixels: int | None = None, long_side: int = THUMBNAIL_SIDE) -> Decoded:
    """Decode untrusted bytes into a working picture. Raises ``ImageRejected``.

    The header is read first: the format must be one of ``FORMATS`` and widthxheight at most
    ``max_pixels`` (a 40000x40000 PNG of a few hundred bytes is refused before a pixel is inflated).
    """
    image = _open(data, max_pixels or _max_pixels())
    width, height = image.size
    fmt = image.format or ""
    orientation = _orientation(image)
    swaps = orientation in (5, 6, 7, 8)
    try:
        if fmt in ("JPEG", "MPO"):  # camera JPEGs carrying extra frames open as MPO: the first is the JPEG
            # DCT scaling: libjpeg decodes at 1/2, 1/4 or 1/8 directly, the cheapest way to get small. Ask
            # for the smallest scale that still has the thumbnail's long side.
            image.draft("RGB", draft_size(width, height, long_side))
        elif fmt == "GIF":
            image.seek(0)
        image.load()
        picture = ImageOps.exif_transpose(image) if orientation not in (None, 1) else image
        if picture.mode != "RGB":
            picture = _to_rgb(picture)
        # Area-resized to the thumbnail's size once, here: a DCT-scaled JPEG is at most about twice that
        # (one short resize), a PNG or a WebP may be full size (no full-size copy lives on).
        if max(picture.size) > long_side:
            picture = _fit(picture, long_side)
    except Image.DecompressionBombError as exc:
        raise ImageRejected(FetchError.TOO_MANY_PIXELS, str(exc)) from None
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombWarning) as exc:
        image.close()
        raise ImageRejected(FetchError.BAD_IMAGE, str(exc) or "cannot decode") from None
    if picture is not image:
        image.close()  # closing also frees the pixels, so only when the working picture is a copy
    if swaps:
        width, height = height, width
    return Decoded(picture=picture, width=width, height=height, format=fmt)


def draft_size(width: int, height: int, long_side: int = THUMBNAIL_SIDE) -> tuple[int, int]:
    """The size to ask libjpeg's DCT scaling for: the picture scaled so its long side is ``long_side``."""
    k = min(1.0, long_side / max(width, height))
    return (math.ceil(width * k), math.ceil(height * k))


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - a broken EXIF block only means "no rotation"
        return None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white (what a listing page shows behind it)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _fit(picture: Image.Image, long_side: int) -> Image.Image:
    scale = long_side / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    # reducing_gap: an integer box reduction first, then a short filtered resize — area interpolation.
    return picture.resize(size, Image.Resampling.BOX, reducing_gap=2.0)


def thumbnail_bytes(picture: Image.Image) -> bytes:
    """The stored thumbnail (JPEG, at most ``THUMBNAIL_SIDE`` on its long side) of a working picture."""
    if max(picture.size) > THUMBNAIL_SIDE:
        picture = _fit(picture, THUMBNAIL_SIDE)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=False, progressive=False)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _dct_table() -> np.ndarray:
    """The 8 lowest-frequency rows of the 32-point DCT-II basis (8x32)."""
    x = np.arange(32)
    return np.cos(np.pi * (2 * x[None, :] + 1) * np.arange(8)[:, None] / 64)


def phash(picture: Image.Image) -> int:
    """64-bit DCT perceptual hash (unsigned): the signs of the 8x8 lowest frequencies of a 32x32 grey
    picture against their median. Re-encoding or resizing changes few bits; other pictures about half.
    """
    grey = np.asarray(picture.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float64)
    table = _dct_table()
    # Only the 8 lowest frequencies are needed: the separable DCT is two small products (8x32 . 32x32 . 32x8).
    coefficients = (table @ grey @ table.T).ravel()  # [v][u]: v the vertical frequency, u the horizontal
    # Rounded: a coefficient that is exactly the median in theory (a flat or symmetric picture) must not
    # land above or below it by a rounding error of the summation order.
    coefficients = coefficients.round(6)
    # The DC term only measures brightness; the median of the rest is the split point.
    median = np.sort(coefficients[1:])[31]
    value = 0
    for above in (coefficients > median).tolist():
        value = (value << 1) | above
    return value


def phash_to_db(value: int) -> int:
    """Store an unsigned 64-bit hash in a signed BigInteger column, bit pattern preserved."""
    return value - (1 << 64) if value >= 1 << 63 else value


def phash_from_db(value: int) -> int:
    return value & 0xFFFFFFFFFFFFFFFF


def hamming(a: int, b: int) -> int:
    """How many of the 64 bits differ (works on stored signed values too)."""
    return ((a ^ b) & 0xFFFFFFFFFFFFFFFF).bit_count()
