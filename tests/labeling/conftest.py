"""Labeling fixtures: pictures made with Pillow (stored as real thumbnails), campaigns and items."""

import hashlib
import io
import itertools

import factory
import pytest
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from classification.models import Image
from labeling.models import Campaign, Item

_counter = itertools.count(1)


def picture_bytes(n: int) -> bytes:
    """A small distinct JPEG: the colour comes from n."""
    buf = io.BytesIO()
    PILImage.new("RGB", (64, 48), ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256)).save(buf, "JPEG")
    return buf.getvalue()


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image
        skip_postgeneration_save = True

    width = 64
    height = 48
    format = "JPEG"

    @factory.lazy_attribute
    def sha256(self):
        return hashlib.sha256(f"picture-{next(_counter)}".encode()).hexdigest()

    @factory.post_generation
    def thumb(obj, create, extracted, **kwargs):
        if create:
            obj.thumbnail.save(f"{obj.sha256[:16]}.jpg", ContentFile(picture_bytes(obj.pk)), save=True)


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    attribute = "image_type"
    votes_required = 5
    max_votes = 9
    gold_rate = 0.0
    active = True


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    campaign = factory.SubFactory(CampaignFactory)
    image = factory.SubFactory(ImageFactory)


@pytest.fixture
def campaign(db):
    return CampaignFactory()


@pytest.fixture
def make_items(db):
    def make(campaign, n: int, **fields):
        return [ItemFactory(campaign=campaign, **fields) for _ in range(n)]

    return make


@pytest.fixture
def labelers(make_user):
    from core.roles import Role

    def make(n: int, prefix: str = "l"):
        return [make_user(f"{prefix}{i}", Role.LABELER) for i in range(n)]

    return make


@pytest.fixture
def make_user(make_user, db):
    """The shared make_user, after re-creating the role groups: a transaction=True test flushes the
    database, data migrations included, so the next one would find no groups."""
    from django.contrib.auth.models import Group

    from core.roles import Role

    for role in Role.values:
        Group.objects.get_or_create(name=role)
    return make_user
