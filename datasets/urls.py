"""HTML pages of the datasets app: dataset exports and model quality (admins only)."""

from django.urls import path

from datasets import views

app_name = "datasets"
urlpatterns = [
    path("datasets/", views.datasets, name="datasets"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/download/", views.dataset_download, name="dataset-download"),
    path("datasets/<int:pk>/manifest.csv", views.dataset_manifest, name="dataset-manifest"),
    path("datasets/import/", views.dataset_import, name="import"),
    path("models/", views.models, name="models"),
    path("models/train/", views.train, name="train"),
    path("models/evaluate/", views.evaluate, name="evaluate"),
    path("models/search/", views.search, name="search"),
    path("models/<int:pk>/promote/", views.promote, name="promote"),
    path("models/evaluations/<int:pk>/", views.evaluation_page, name="evaluation"),
]
