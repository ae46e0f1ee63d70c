"""Top-level URLs: each app's pages and API are included here, nothing else."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api_views import MeView

api_v1 = [
    path("me/", MeView.as_view(), name="api-me"),
    path("", include("classification.api.urls")),
    path("", include("datasets.api.urls")),
    path("", include("sitemaps.api.urls")),
    path("", include("labeling.api.urls")),
]

urlpatterns = [
    path("", include("core.urls")),
    path("", include("datasets.urls")),
    path("sitemaps/", include("sitemaps.urls")),
    path("label/", include("labeling.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

if settings.DEBUG and not settings.AWS_STORAGE_BUCKET_NAME:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
