"""API v1 routes of the labeling app."""

urlpatterns: list = []
