"""API v1 routes: classify."""

urlpatterns: list = []
