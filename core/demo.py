"""The demo users: one per role, with a known password (embedded setup only)."""

from core.roles import Role

DEMO_PASSWORD = "spotcheck-demo"
DEMO_USERS = {
    Role.LABELER: {"username": "labeler", "first_name": "Lena"},
    Role.REVIEWER: {"username": "reviewer", "first_name": "Ravi"},
    Role.ADVERTISER: {"username": "advertiser", "first_name": "Ada"},
    Role.ADMIN: {"username": "admin", "first_name": "Alex", "is_staff": True, "is_superuser": True},
}
