"""API v1 routes: classify."""

from django.urls import path

from classification.api.classify import ClassifyView

urlpatterns = [path("classify/", ClassifyView.as_view(), name="api-classify")]
