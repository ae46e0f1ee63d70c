"""API v1 routes of the sitemaps app."""

urlpatterns: list = []
