"""Navigation: each role sees only the sections it may use."""

from core.roles import Role, user_roles

SECTIONS = (
    ("Label", "/label/", {Role.LABELER, Role.REVIEWER, Role.ADMIN}),
    ("Conflicts", "/label/conflicts/", {Role.REVIEWER, Role.ADMIN}),
    ("Sitemaps", "/sitemaps/", {Role.REVIEWER, Role.ADVERTISER, Role.ADMIN}),
    ("Datasets", "/datasets/", {Role.ADMIN}),
    ("Models", "/models/", {Role.ADMIN}),
    ("Admin", "/admin/", {Role.ADMIN}),
    ("API", "/api/docs/", {Role.REVIEWER, Role.ADVERTISER, Role.ADMIN}),
)


def navigation(request):
    roles = user_roles(request.user) if hasattr(request, "user") else frozenset()
    items = [
        {"label": label, "url": url, "active": request.path.startswith(url)}
        for label, url, allowed in SECTIONS
        if roles & allowed
    ]
    return {"nav_items": items, "user_roles": sorted(roles)}
