"""API v1 routes: pictures by tag."""

from django.urls import path

from classification.api.tags import TaggedImagesView

urlpatterns = [path("images/", TaggedImagesView.as_view(), name="api-images-tagged")]
