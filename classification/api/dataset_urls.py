"""API v1 routes: dataset."""

urlpatterns: list = []
