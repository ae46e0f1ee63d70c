"""Who may use what: the role sets of the sections, one page decorator and one DRF permission for both.

Denied users get 403, or 404 where the section must not even be confirmed to exist (``hidden``).
Object-level visibility (which advertiser a user sees) stays with the app that owns the objects.
"""

from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from core.roles import Role, has_role

LABELING = (Role.LABELER, Role.REVIEWER, Role.ADMIN)
SITEMAPS = (Role.REVIEWER, Role.ADVERTISER, Role.ADMIN)
STAFF = (Role.REVIEWER, Role.ADMIN)
# Who may make the server fetch URLs (or read the bucket) of their choice: staff and machine tokens.
CLASSIFY = (Role.REVIEWER, Role.ADMIN, Role.SERVICE)
ADMIN = (Role.ADMIN,)


def page_requires(*roles: str, hidden: bool = False, message: str = ""):
    """Page decorator: users holding none of ``roles`` get 403 (404 when ``hidden``)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not has_role(request.user, *roles):
                if hidden:
                    raise Http404(message)
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


class RolePermission(BasePermission):
    """Authenticated users holding one of ``roles``; others 403 (``hidden``: 404). Anonymous: 401."""

    roles: tuple[str, ...] = ()
    hidden = False

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if has_role(request.user, *self.roles):
            return True
        if self.hidden:
            raise exceptions.NotFound()
        return False


def api_requires(*roles: str, hidden: bool = False, message: str | None = None) -> type[RolePermission]:
    """A DRF permission class for ``roles`` (use it in ``permission_classes``)."""
    attrs = {"roles": tuple(roles), "hidden": hidden, "__doc__": f"Holds one of: {', '.join(roles)}."}
    if message is not None:
        attrs["message"] = message
    return type("RequiresRole", (RolePermission,), attrs)
