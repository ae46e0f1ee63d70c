"""API v1 routes of the classification app: classify, pictures by tag, bucket events."""

from django.urls import include, path

urlpatterns = [
    path("", include("classification.api.classify_urls")),
    path("", include("classification.api.tag_urls")),
    path("", include("classification.api.event_urls")),
]
