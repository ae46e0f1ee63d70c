"""The builtin classifier: tone histograms, no service, a few milliseconds per picture.

Image type: a photo (Dealer) spreads over many tones; a render (Stock) sits on a white background in few
tones; a placeholder card is flat, few tones, and its centre barely differs from its frame (some text, an
icon). Colour: the tones over-represented in the central region compared with the frame (the vehicle, not
the background), each named by its nearest CIELAB prototype, weighted by how over-represented it is.
Every threshold is a parameter of the stored ModelVersion, so retraining is a search over ``params``.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

from PIL import Image, ImageChops

from classification.classifiers.base import Values
from classification.models import ModelVersion
from classification.vocabulary import Attribute, Color, ImageType

# sRGB prototypes of the colour names as they appear on vehicles (silver counts as Grey), compared in CIELAB.
# A name may have several prototypes; one each names the synthetic set and the cases we have seen.
PROTOTYPES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    (Color.BLACK, (20, 20, 22)),
    (Color.BLUE, (35, 65, 155)),
    (Color.BROWN, (105, 68, 40)),
    (Color.BURGUNDY, (100, 18, 36)),
    (Color.GREEN, (40, 115, 55)),
    (Color.GREY, (128, 129, 131)),
    (Color.ORANGE, (235, 115, 25)),
    (Color.PINK, (235, 145, 180)),
    (Color.PURPLE, (105, 45, 135)),
    (Color.RED, (200, 30, 32)),
    (Color.WHITE, (245, 245, 245)),
    (Color.YELLOW, (240, 205, 35)),
)


def _srgb_to_linear(c: float) -> float:
    c /= 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """CIELAB (D65) of an sRGB colour."""
    r, g, b = (_srgb_to_linear(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x), f(y), f(z)
    return (116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz))


ACHROMATIC = frozenset({Color.BLACK, Color.GREY, Color.WHITE})

_PROTOTYPE_LAB = tuple((name, lab(rgb)) for name, rgb in PROTOTYPES)


@lru_cache(maxsize=4096)
def nearest_color(rgb: tuple[int, int, int]) -> str:
    """The colour name whose prototype is nearest in CIELAB (ΔE*ab)."""
    point = lab(rgb)
    return min(_PROTOTYPE_LAB, key=lambda entry: math.dist(point, entry[1]))[0]


def _confidence(distance: float, scale: float) -> float:
    """Map how far a measure is past its threshold to a score in [0.5, 1)."""
    return round(0.5 + 0.5 * math.tanh(abs(distance) / max(scale, 1e-6)), 3)


class BuiltinClassifier:
    # The defaults, in one place; a stored version's params override them key by key. A flat dict of
    # numbers so a parameter search can vary any of them.
    DEFAULT_PARAMS: dict[str, float | int] = {
        "analysis_side": 160,  # long side of the picture the histograms are taken on
        "tone_bits": 4,  # bits kept per channel when counting tones (4 → 4096 bins)
        "color_tone_bits": 5,  # the same when looking for the vehicle's colour
        "top_tones": 8,  # concentration = share of pixels in the most common tones
        "border_fraction": 0.08,  # width of the frame, as a fraction of each side
        "center_fraction": 0.6,  # the central region, as a fraction of each side
        "center_y": 0.6,  # its vertical middle (vehicles tend to sit a little below the middle)
        "white_level": 232,  # a pixel is white background when its darkest channel is at least this
        "stock_min_concentration": 0.75,  # at least this concentration: few tones (render or card)
        "stock_min_white_border": 0.8,  # share of white frame pixels for Stock
        "placeholder_max_foreground": 0.26,  # centre differs from frame by less than this: a card
        "placeholder_min_concentration": 0.9,  # a very flat non-white picture is a card too
        "color_min_foreground": 0.08,  # below this there is no object to name a colour for
        "color_min_chromatic": 0.3,  # share of chromatic excess above which the paint is chromatic
        "score_scale_concentration": 0.15,
        "score_scale_foreground": 0.1,
        "score_scale_white": 0.1,
    }

    def __init__(self, model_version: ModelVersion) -> None:
        self.model_version = model_version
        self.params = {**self.DEFAULT_PARAMS, **(model_version.params or {})}

    def classify(self, picture: Image.Image) -> Values:
        measures = self.measure(picture)
        image_type, type_score = self._image_type(measures)
        if image_type == ImageType.PLACEHOLDER or measures["foreground"] < self.params["color_min_foreground"]:
            color: tuple[str | None, float | None] = (None, None)
        else:
            color = (measures["color"], measures["color_share"])
        return {Attribute.IMAGE_TYPE: (image_type, type_score), Attribute.COLOR: color}

    def _image_type(self, m: dict) -> tuple[str, float]:
        p = self.params
        by_tones = m["concentration"] - p["stock_min_concentration"]
        if by_tones < 0:
            return ImageType.DEALER, _confidence(by_tones, p["score_scale_concentration"])
        by_foreground = m["foreground"] - p["placeholder_max_foreground"]
        if by_foreground < 0:
            return ImageType.PLACEHOLDER, _confidence(by_foreground, p["score_scale_foreground"])
        by_white = m["white_border"] - p["stock_min_white_border"]
        if by_white >= 0:
            score = min(
                _confidence(by_tones, p["score_scale_concentration"]),
                _confidence(by_white, p["score_scale_white"]),
                _confidence(by_foreground, p["score_scale_foreground"]),
            )
            return ImageType.STOCK, score
        flat = m["concentration"] - p["placeholder_min_concentration"]
        if flat >= 0:
            return ImageType.PLACEHOLDER, _confidence(flat, p["score_scale_concentration"])
        # Few tones on a coloured background: a studio shot or an edited photo, not our Stock criterion.
        return ImageType.DEALER, 0.5

    def measure(self, picture: Image.Image) -> dict:
        """The histogram measures the decision is made on (exposed for evaluation and parameter search)."""
        p = self.params
        small = _analysis_copy(picture, int(p["analysis_side"]))
        width, height = small.size
        total = width * height
        shift = 8 - int(p["tone_bits"])
        half = (1 << shift) >> 1
        tones = small.point([((v >> shift) << shift) + half for v in range(256)] * 3)

        counts = sorted((n for n, _ in tones.getcolors(total)), reverse=True)
        concentration = sum(counts[: int(p["top_tones"])]) / total

        bw = max(1, round(width * p["border_fraction"]))
        bh = max(1, round(height * p["border_fraction"]))
        frame_boxes = [
            (0, 0, width, bh),
            (0, height - bh, width, height),
            (0, bh, bw, height - bh),
            (width - bw, bh, width, height - bh),
        ]
        darkest = ImageChops.darker(ImageChops.darker(small.getchannel(0), small.getchannel(1)), small.getchannel(2))
        white = darkest.point([255 if v >= p["white_level"] else 0 for v in range(256)])
        frame: Counter = Counter()
        frame_white = frame_total = 0
        for box in frame_boxes:
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            region = tones.crop(box)
            n = region.width * region.height
            frame.update({rgb: c for c, rgb in region.getcolors(n)})
            frame_white += white.crop(box).histogram()[255]
            frame_total += n

        cx = width * (1 - p["center_fraction"]) / 2
        half = height * p["center_fraction"] / 2
        middle = height * min(max(p["center_y"], p["center_fraction"] / 2), 1 - p["center_fraction"] / 2)
        center_box = (round(cx), round(middle - half), max(round(cx) + 1, round(width - cx)), round(middle + half))
        center_region = tones.crop(center_box)
        center_total = center_region.width * center_region.height
        center = center_region.getcolors(center_total)

        # The object is what the centre has more of than the frame: total-variation excess per tone.
        foreground = 0.0
        for count, rgb in center:
            excess = count / center_total - frame.get(rgb, 0) / max(frame_total, 1)
            if excess > 0:
                foreground += excess
        # For the colour, the background is what lies beside the centre on the same rows: a vehicle is
        # framed in the middle, while ground, walls and horizon run across the picture at the same heights.
        # Finer tones here, so that a white body shaded a few levels below a white background still counts.
        color_shift = 8 - int(p["color_tone_bits"])
        color_half = (1 << color_shift) >> 1
        color_tones = small.point([((v >> color_shift) << color_shift) + color_half for v in range(256)] * 3)
        center_region = color_tones.crop(center_box)
        center = center_region.getcolors(center_total)
        beside: Counter = Counter()
        beside_total = 0
        for box in ((0, center_box[1], bw, center_box[3]), (width - bw, center_box[1], width, center_box[3])):
            region = color_tones.crop(box)
            n = region.width * region.height
            beside.update({rgb: c for c, rgb in region.getcolors(n)})
            beside_total += n
        votes: Counter = Counter()
        for count, rgb in center:
            excess = count / center_total - beside.get(rgb, 0) / max(beside_total, 1)
            if excess > 0:
                votes[nearest_color(rgb)] += excess
        voted = sum(votes.values())
        # How the central excess splits over the colour names (features for the learned colour head).
        color_votes = {name: round(v / voted, 4) for name, v in votes.items()} if voted else {}
        # Tyres, glass and trim are black or grey on every vehicle and so are most backgrounds, so a
        # substantial chromatic excess is the paint; the achromatic names win only when it is small.
        chromatic = Counter({name: v for name, v in votes.items() if name not in ACHROMATIC})
        chromatic_share = sum(chromatic.values()) / voted if voted else 0.0
        if chromatic_share >= p["color_min_chromatic"]:
            votes, voted = chromatic, sum(chromatic.values())
        color, weight = votes.most_common(1)[0] if votes else (None, 0.0)
        return {
            "concentration": round(concentration, 4),
            "white_border": round(frame_white / max(frame_total, 1), 4),
            "foreground": round(foreground, 4),
            "color": color,
            "color_share": round(weight / voted, 3) if voted else None,
            "chromatic_share": round(chromatic_share, 3),
            "color_votes": color_votes,
        }


def _analysis_copy(picture: Image.Image, side: int) -> Image.Image:
    picture = picture if picture.mode == "RGB" else picture.convert("RGB")
    if max(picture.size) <= side:
        return picture
    scale = side / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
