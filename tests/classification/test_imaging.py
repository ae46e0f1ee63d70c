"""Decoding untrusted bytes: formats, pixel caps before decoding, truncation, EXIF, DCT scaling, pHash."""

import io
import math
import struct
import zlib

import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from classification import imaging
from classification.imaging import ImageRejected, decode, hamming, phash, probe
from classification.models import FetchError
from classification.synthetic import picture, picture_bytes


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for a huge picture, with a few bytes of pixel data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel data is decoded."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize("size", [(40000, 40000), (9000, 9000)])
def test_small_png_claiming_huge_dimensions_is_refused_before_decoding(no_decoding, size):
    data = png_claiming(*size)
    assert len(data) < 200
    with pytest.raises(ImageRejected) as rejected:
        decode(data)
    assert rejected.value.reason == FetchError.TOO_MANY_PIXELS
    with pytest.raises(ImageRejected):
        probe(data)


def test_truncated_jpeg_is_a_bad_image():
    data = picture_bytes(kind="dealer", color="Red", width=640, height=480)
    with pytest.raises(ImageRejected) as rejected:
        decode(data[: len(data) // 2])
    assert rejected.value.reason == FetchError.BAD_IMAGE


@pytest.mark.parametrize(
    "data",
    [b"", b"<html><body>nope</body></html>", b"GIF87a-but-not-really", b"\x00" * 100],
    ids=["empty", "html", "fake-gif", "zeros"],
)
def test_non_pictures_are_not_images(data):
    with pytest.raises(ImageRejected) as rejected:
        decode(data)
    assert rejected.value.reason in {FetchError.NOT_AN_IMAGE, FetchError.BAD_IMAGE}


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PPM"])
def test_formats_outside_jpeg_png_webp_gif_are_refused(fmt):
    buffer = io.BytesIO()
    picture(kind="stock", color="Red", width=64, height=48).save(buffer, format=fmt)
    with pytest.raises(ImageRejected) as rejected:
        decode(buffer.getvalue())
    assert rejected.value.reason == FetchError.NOT_AN_IMAGE


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_accepted_formats_decode_to_rgb(fmt):
    data = picture_bytes(kind="stock", color="Blue", width=320, height=240, fmt=fmt)
    decoded = decode(data)
    assert decoded.picture.mode == "RGB"
    assert (decoded.width, decoded.height, decoded.format) == (320, 240, fmt)


def test_animated_gif_uses_the_first_frame():
    frames = [picture(kind="stock", color=c, width=160, height=120).convert("P") for c in ("Red", "Green")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    first = decode(buffer.getvalue()).picture
    r, g, _b = first.getpixel((80, 70))
    assert r > g  # the red car, not the green one


def drafted_sizes(monkeypatch) -> list[tuple[int, int]]:
    """The sizes libjpeg was asked to decode at (JpegImageFile.draft), recorded as decode calls it."""
    sizes = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original(self, mode, size)
        sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return sizes


def test_huge_jpeg_is_decoded_at_a_quarter_scale_then_brought_to_the_thumbnail_size(monkeypatch):
    data = picture_bytes(kind="stock", color="Red", width=4163, height=3330, quality=80)
    sizes = drafted_sizes(monkeypatch)
    decoded = decode(data)
    assert sizes == [(1041, 833)]
    assert decoded.picture.size == (800, 640)  # the thumbnail's pixels: the classifier and the hash see these


def test_large_jpeg_is_decoded_at_the_smallest_dct_scale_that_keeps_the_thumbnail_size(monkeypatch):
    data = picture_bytes(kind="dealer", color="Red", width=2600, height=1950)
    drafts = drafted_sizes(monkeypatch)
    decoded = decode(data)
    assert drafts == [(1300, 975)]  # libjpeg decoded at 1/2 scale: 1/4 would be under 800 on the long side
    assert decoded.picture.size == (800, 600)
    assert (decoded.width, decoded.height) == (2600, 1950)


def test_portrait_jpeg_is_dct_scaled_by_its_long_side(monkeypatch):
    data = picture_bytes(kind="dealer", color="Red", width=1950, height=3300)
    drafts = drafted_sizes(monkeypatch)
    decoded = decode(data)
    assert drafts == [(488, 825)]  # 1/4: the long side is what the thumbnail needs, not the width
    assert decoded.picture.size == (473, 800)


def test_exif_orientation_is_applied():
    base = picture(kind="stock", color="Red", width=400, height=200)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    buffer = io.BytesIO()
    base.save(buffer, format="JPEG", exif=exif.tobytes())
    decoded = decode(buffer.getvalue())
    assert decoded.picture.size == (200, 400)
    assert (decoded.width, decoded.height) == (200, 400)
    assert probe(buffer.getvalue())[:2] == (200, 400)


def test_big_png_is_area_resized_at_decode():
    decoded = decode(picture_bytes(kind="stock", color="Red", width=2000, height=1500, fmt="PNG"))
    assert decoded.picture.size == (800, 600)
    assert (decoded.width, decoded.height) == (2000, 1500)


def test_thumbnail_is_a_jpeg_at_most_800_px():
    decoded = decode(picture_bytes(kind="dealer", color="Green", width=1600, height=1200))
    thumb = Image.open(io.BytesIO(imaging.thumbnail_bytes(decoded.picture)))
    assert thumb.format == "JPEG" and max(thumb.size) == 800


def test_phash_survives_reencoding_and_resizing_but_tells_pictures_apart():
    original = picture(kind="dealer", color="Red", seed=3)
    buffer = io.BytesIO()
    original.resize((512, 384)).save(buffer, format="JPEG", quality=55)
    same = phash(decode(buffer.getvalue()).picture)
    base = phash(original)
    assert hamming(base, same) <= 6
    others = [phash(picture(kind="dealer", color="Red", seed=s)) for s in (4, 5)]
    others.append(phash(picture(kind="placeholder", color="Red", seed=3)))
    assert all(hamming(base, other) > 12 for other in others)


def _phash_by_definition(image) -> int:
    """The hash written out from its definition: DCT-II of the 32x32 grey picture, the 8x8 lowest
    frequencies (row v, column u) against the median of all but the DC term, most significant bit first."""
    grey = list(image.convert("L").resize((32, 32), Image.Resampling.BOX).get_flattened_data())

    def c(k: int, n: int) -> float:
        return math.cos(math.pi * (2 * n + 1) * k / 64)

    coefficients = [
        sum(grey[y * 32 + x] * c(u, x) * c(v, y) for y in range(32) for x in range(32))
        for v in range(8)
        for u in range(8)
    ]
    median = sorted(coefficients[1:])[31]
    return int("".join("1" if value > median else "0" for value in coefficients), 2)


def test_phash_is_the_median_split_of_the_lowest_dct_frequencies():
    pictures = [
        picture(kind=kind, color="Blue", seed=seed) for kind in ("dealer", "stock", "placeholder") for seed in (1, 2)
    ]
    assert [phash(p) for p in pictures] == [_phash_by_definition(p) for p in pictures]


def test_phash_of_a_flat_picture_is_its_brightness_bit_alone_whatever_the_colour():
    # Every frequency but DC is zero in theory: rounding noise must not decide the other 63 bits.
    for colour in ((10, 20, 30), (255, 255, 255), (128, 0, 64)):
        assert phash(Image.new("RGB", (64, 48), colour)) == 1 << 63


def test_phash_round_trips_through_the_signed_column():
    value = (1 << 64) - 5
    stored = imaging.phash_to_db(value)
    assert -(1 << 63) <= stored < 1 << 63
    assert imaging.phash_from_db(stored) == value
    assert hamming(stored, value) == 0


def test_camera_mpo_jpeg_is_decoded_with_dct_scaling(monkeypatch):
    frames = [picture(kind="dealer", color="Red", width=2600, height=1950), picture(kind="stock", color="Red")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="MPO", save_all=True, append_images=frames[1:])
    drafts = drafted_sizes(monkeypatch)
    decoded = decode(buffer.getvalue())
    assert drafts == [(1300, 975)]
    assert decoded.format in ("MPO", "JPEG")
    assert decoded.picture.size == (800, 600)
