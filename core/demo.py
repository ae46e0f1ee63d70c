"""The demo users: one per role ('scraper' holds the machine-token role), with a known password (embedded only)."""

from core.roles import Role

DEMO_PASSWORD = "spotcheck-demo"
DEMO_USERS = {
    Role.LABELER: {"username": "labeler", "first_name": "Lena"},
    Role.REVIEWER: {"username": "reviewer", "first_name": "Ravi"},
    Role.ADVERTISER: {"username": "advertiser", "first_name": "Ada"},
    Role.ADMIN: {"username": "admin", "first_name": "Alex", "is_staff": True, "is_superuser": True},
    Role.SERVICE: {"username": "scraper", "first_name": "Scraper"},
}
