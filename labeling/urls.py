"""HTML pages of the labeling app."""

from django.urls import path

from labeling import pwa, views

app_name = "labeling"
urlpatterns = [
    path("", views.campaign_list, name="campaigns"),
    path("<int:pk>/", views.label, name="label"),
    path("<int:pk>/votes.csv", views.votes_csv, name="votes-csv"),
    path("<int:pk>/fill/", views.campaign_fill, name="fill"),
    path("conflicts/", views.conflicts, name="conflicts"),
    path("conflicts/<int:pk>/", views.adjudicate, name="adjudicate"),
    path("stats/", views.stats, name="stats"),
    path("sw.js", pwa.service_worker, name="service-worker"),
    path("manifest.webmanifest", pwa.manifest, name="manifest"),
]
