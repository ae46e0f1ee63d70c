"""API v1 routes of the classification app."""

urlpatterns: list = []
