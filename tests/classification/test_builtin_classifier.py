"""The builtin classifier on generated Stock/Dealer/Placeholder pictures in every colour, and its params."""

import pytest

from classification.classifiers import classifier_for
from classification.classifiers.builtin import BuiltinClassifier, nearest_color
from classification.imaging import decode
from classification.models import ModelVersion
from classification.synthetic import KINDS, PAINT, picture_bytes
from classification.vocabulary import Attribute, Color, ImageType

COLORS = list(PAINT)


def classify(data: bytes, params: dict | None = None) -> dict:
    version = ModelVersion(name="test", backend="builtin", params=params or {})
    return classifier_for(version).classify(decode(data).picture)


@pytest.mark.parametrize("color", COLORS)
@pytest.mark.parametrize("kind", KINDS)
def test_generated_picture_gets_its_type_and_colour(kind, color):
    values = classify(picture_bytes(kind=kind, color=color, seed=0))
    image_type, type_score = values[Attribute.IMAGE_TYPE]
    colour, colour_score = values[Attribute.COLOR]
    assert image_type == kind.capitalize()
    assert 0.5 <= type_score <= 1
    if kind == "placeholder":
        assert (colour, colour_score) == (None, None)  # no vehicle, no colour (seed 002)
    else:
        assert colour == color
        assert 0 < colour_score <= 1


def test_accuracy_holds_across_seeds_sizes_and_encodings():
    """Beyond seed 0: other layouts, sizes, JPEG qualities and PNG/WebP. Image type must be perfect;
    colour may miss a rare achromatic car in a busy street scene."""
    sizes = [(640, 480), (800, 600), (1280, 720), (1600, 1200)]
    type_misses, colour_misses, total = [], [], 0
    for seed in range(1, 4):
        for kind in KINDS:
            for color in COLORS:
                width, height = sizes[(seed + COLORS.index(color)) % len(sizes)]
                fmt = ("JPEG", "PNG", "WEBP")[(seed + KINDS.index(kind)) % 3]
                data = picture_bytes(
                    kind=kind, color=color, seed=seed, width=width, height=height, fmt=fmt, quality=60 + 10 * seed
                )
                values = classify(data)
                total += 1
                if values[Attribute.IMAGE_TYPE][0] != kind.capitalize():
                    type_misses.append((kind, color, seed))
                expected = None if kind == "placeholder" else color
                if values[Attribute.COLOR][0] != expected:
                    colour_misses.append((kind, color, seed))
    assert type_misses == []
    assert len(colour_misses) / total <= 0.03, colour_misses


def test_thresholds_come_from_the_model_version_params():
    stock = picture_bytes(kind="stock", color="Blue", seed=0)
    assert classify(stock)[Attribute.IMAGE_TYPE][0] == ImageType.STOCK
    # A version demanding an impossible tone concentration sees every picture as a photo.
    assert classify(stock, {"stock_min_concentration": 1.01})[Attribute.IMAGE_TYPE][0] == ImageType.DEALER


def test_default_params_are_a_flat_dict_of_numbers():
    assert BuiltinClassifier.DEFAULT_PARAMS
    assert all(isinstance(v, int | float) for v in BuiltinClassifier.DEFAULT_PARAMS.values())


@pytest.mark.django_db
def test_migration_created_an_active_builtin_version_with_the_defaults():
    version = ModelVersion.objects.get(backend="builtin", status=ModelVersion.Status.ACTIVE)
    assert version.params == BuiltinClassifier.DEFAULT_PARAMS


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((200, 30, 30), Color.RED),
        ((250, 250, 250), Color.WHITE),
        ((10, 10, 12), Color.BLACK),
        ((30, 60, 160), Color.BLUE),
    ],
)
def test_nearest_cielab_prototype_names_colours(rgb, name):
    assert nearest_color(rgb) == name


def test_measures_are_exposed_for_parameter_search():
    version = ModelVersion(name="t", params={})
    measures = BuiltinClassifier(version).measure(decode(picture_bytes(kind="stock", color="Red")).picture)
    assert set(measures) >= {"concentration", "white_border", "foreground", "color"}
    assert measures["white_border"] > 0.9
