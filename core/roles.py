"""The roles (Django groups) and the questions views ask about them. ``service`` is for machine tokens
(scrapers, other systems calling the API), never for people.

A user's roles are remembered per process for AUTH_CACHE_SECONDS (core.authentication says the bound), so a
permission check costs no query on the hot path.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models

from core.memo import Memo


class Role(models.TextChoices):
    LABELER = "labeler", "Labeler"
    REVIEWER = "reviewer", "Reviewer"
    ADVERTISER = "advertiser", "Advertiser"
    ADMIN = "admin", "Admin"
    SERVICE = "service", "Service (machine token)"


# user id -> frozenset of role names (core.signals forgets an entry when this process changes it)
remembered = Memo(seconds=lambda: settings.AUTH_CACHE_SECONDS)


def user_roles(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The role names a user holds; a superuser holds every role. Cached on the user object and per process."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_spotcheck_roles", None)
    if cached is None:
        if user.is_superuser:
            cached = frozenset(Role.values)
        else:
            cached = remembered.get(user.pk)
            if cached is None:
                cached = frozenset(user.groups.filter(name__in=Role.values).values_list("name", flat=True))
                remembered.set(user.pk, cached)
        user._spotcheck_roles = cached
    return cached


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return has_role(user, Role.ADMIN)


def is_staff_reviewer(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Reviewers and admins: they see every advertiser and their fixes are global."""
    return has_role(user, Role.REVIEWER, Role.ADMIN)
