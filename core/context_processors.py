"""Navigation: each role sees only the sections it may use."""

from core.permissions import ADMIN, LABELING, SITEMAPS, STAFF
from core.roles import user_roles

# The same role sets the pages check (core.permissions), so a link is shown exactly where it opens.
SECTIONS = (
    ("Label", "/label/", set(LABELING)),
    ("Conflicts", "/label/conflicts/", set(STAFF)),
    ("Sitemaps", "/sitemaps/", set(SITEMAPS)),
    ("Datasets", "/datasets/", set(ADMIN)),
    ("Models", "/models/", set(ADMIN)),
    ("Admin", "/admin/", set(ADMIN)),
    ("API", "/api/docs/", set(SITEMAPS)),
)


def navigation(request):
    roles = user_roles(request.user) if hasattr(request, "user") else frozenset()
    items = [
        {"label": label, "url": url, "active": request.path.startswith(url)}
        for label, url, allowed in SECTIONS
        if roles & allowed
    ]
    return {"nav_items": items, "user_roles": sorted(roles)}
