"""API v1 routes: dataset exports."""

from django.urls import path

from datasets.api import views as datasets

urlpatterns = [
    path("exports/", datasets.ExportListCreateView.as_view(), name="api-exports"),
    path("exports/<int:pk>/", datasets.ExportDetailView.as_view(), name="api-export"),
    path("exports/<int:pk>/download/", datasets.ExportDownloadView.as_view(), name="api-export-download"),
    path("exports/<int:pk>/manifest/", datasets.ExportDownloadView.as_view(manifest=True), name="api-export-manifest"),
]
