"""API v1 routes of the classification app: classify."""

from django.urls import include, path

urlpatterns = [
    path("", include("classification.api.classify_urls")),
]
