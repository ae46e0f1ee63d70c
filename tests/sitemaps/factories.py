"""Factories for sitemaps tests. Classification rows (Image, Prediction, ModelVersion) are created directly here,
in test setup only; the code under test goes through classification's services."""

import hashlib
import itertools

import factory

from classification.models import Image, ModelVersion, Prediction
from sitemaps.models import Advertiser, Vehicle, VehicleImage

_counter = itertools.count(1)


class AdvertiserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Advertiser
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"dealer-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())


class VehicleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vehicle

    advertiser = factory.SubFactory(AdvertiserFactory)
    external_id = factory.Sequence(lambda n: f"V{n:05d}")
    title = "Some car"
    color = ""


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    sha256 = factory.LazyFunction(lambda: hashlib.sha256(str(next(_counter)).encode()).hexdigest())
    width = 800
    height = 600
    format = "JPEG"
    phash = None


class VehicleImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VehicleImage

    vehicle = factory.SubFactory(VehicleFactory)
    position = factory.Sequence(lambda n: n)
    url = factory.Sequence(lambda n: f"https://cdn.example.com/p/{n}.jpg")
    image = factory.SubFactory(ImageFactory)
    status = VehicleImage.Status.DONE


def model_version() -> ModelVersion:
    version = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    return version or ModelVersion.objects.create(name="test-builtin", status=ModelVersion.Status.ACTIVE)


def predict(image: Image, *, image_type: str | None = None, color: str | None = None) -> None:
    """What the classifier said ("" or None: it returned nothing)."""
    version = model_version()
    for attribute, value in (("image_type", image_type), ("color", color)):
        if value is not None:
            Prediction.objects.update_or_create(
                image=image, attribute=attribute, defaults={"value": value, "score": 0.9, "model_version": version}
            )


def inventory(vehicles: list[int]) -> list:
    """An inventory as the API parses it: vehicle ``C{i}`` shows ``n`` pictures
    ``https://cdn.example.com/{i}/{p}.jpg`` for each ``n`` of ``vehicles``."""
    from sitemaps.ingest import inventory_parse

    payload = {
        "vehicles": [
            {"external_id": f"C{i}", "images": [f"https://cdn.example.com/{i}/{p}.jpg" for p in range(n)]}
            for i, n in enumerate(vehicles)
        ]
    }
    return inventory_parse(payload=payload)
