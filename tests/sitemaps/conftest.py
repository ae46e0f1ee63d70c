"""Fixtures of the sitemaps tests: an advertiser with a user, vehicles with classified pictures."""

import pytest

from core.roles import Role
from tests.sitemaps.factories import AdvertiserFactory, VehicleFactory, VehicleImageFactory, predict


@pytest.fixture
def advertiser(db):
    return AdvertiserFactory(slug="acme", name="Acme Cars")


@pytest.fixture
def other_advertiser(db):
    return AdvertiserFactory(slug="rival", name="Rival Motors")


@pytest.fixture
def member(make_user, advertiser):
    """An advertiser user of "acme"."""
    user = make_user("acme-user", Role.ADVERTISER)
    advertiser.members.add(user)
    return user


@pytest.fixture
def rival_member(make_user, other_advertiser):
    user = make_user("rival-user", Role.ADVERTISER)
    other_advertiser.members.add(user)
    return user


@pytest.fixture
def make_picture():
    """A vehicle image with a classified picture: make_picture(vehicle, image_type=..., color=...)."""

    def make(vehicle=None, *, image_type=None, color=None, advertiser=None, **fields):
        if vehicle is None:
            vehicle = VehicleFactory(advertiser=advertiser) if advertiser else VehicleFactory()
        vi = VehicleImageFactory(vehicle=vehicle, **fields)
        if vi.image is not None:
            predict(vi.image, image_type=image_type, color=color)
        return vi

    return make


@pytest.fixture
def role_groups(db):
    """The role groups, for transactional tests: an earlier transactional test's flush removes the rows the
    data migration created (serialized_rollback clashes with the content types post_migrate recreates)."""
    from django.contrib.auth.models import Group

    for role in Role.values:
        Group.objects.get_or_create(name=role)
