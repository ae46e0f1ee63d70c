"""API v1 routes: bucket events (SNS and Event Grid)."""

from django.urls import path

from classification.api.events import EventGridView, SnsEventView

urlpatterns = [
    path("events/s3/", SnsEventView.as_view(), name="api-events-s3"),
    path("events/azure/", EventGridView.as_view(), name="api-events-azure"),
]
