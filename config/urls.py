"""Top-level URLs: each app's pages and API are included here, nothing else."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api_views import MeView

# Django tries patterns in order and each miss costs a regex match (the admin alone has dozens): the API, and in
# it labeling (the phones' hot path), come first. No two prefixes overlap, so the order changes nothing else.
api_v1 = [
    path("", include("labeling.api.urls")),
    path("me/", MeView.as_view(), name="api-me"),
    path("", include("classification.api.urls")),
    path("", include("datasets.api.urls")),
    path("", include("sitemaps.api.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("", include("core.urls")),
    path("", include("datasets.urls")),
    path("sitemaps/", include("sitemaps.urls")),
    path("label/", include("labeling.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

if not settings.AWS_STORAGE_BUCKET_NAME:
    # Local storage: thumbnails go through an authenticated view; nothing else under MEDIA_ROOT is served.
    from classification.media import thumbnail

    urlpatterns.append(path(f"{settings.MEDIA_URL.strip('/')}/thumbnails/<path:name>", thumbnail, name="thumbnail"))
