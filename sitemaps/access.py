"""Who sees which advertiser: staff see every one, an advertiser user only their own, anyone else none.
(Who may use the sitemap pages at all is core.permissions.SITEMAPS.)"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.http import Http404

from core.roles import Role, has_role, is_staff_reviewer
from sitemaps.models import Advertiser

User = AbstractBaseUser | AnonymousUser


def advertisers_visible(*, user: User) -> QuerySet[Advertiser]:
    """The advertisers ``user`` may see; everything outside this set answers 404."""
    if is_staff_reviewer(user):
        return Advertiser.objects.all()
    if has_role(user, Role.ADVERTISER):
        return Advertiser.objects.filter(members=user)
    return Advertiser.objects.none()


def advertiser_get_visible(*, user: User, slug: str) -> Advertiser:
    """The advertiser named ``slug`` if ``user`` may see it, else Http404 (never 403: no existence leak)."""
    advertiser = advertisers_visible(user=user).filter(slug=slug).first()
    if advertiser is None:
        raise Http404("no such advertiser")
    return advertiser


def image_visible(*, user: User, image_id: int) -> bool:
    """Whether ``user`` may see the picture: it is in the sitemap of an advertiser they may see."""
    from sitemaps.models import VehicleImage

    if is_staff_reviewer(user):
        return True
    if not has_role(user, Role.ADVERTISER):
        return False
    return VehicleImage.objects.filter(image_id=image_id, vehicle__advertiser__members=user).exists()
