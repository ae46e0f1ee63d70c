"""API v1 routes of the sitemaps app."""

from django.urls import path

from sitemaps.api import views

urlpatterns = [
    path("advertisers/<slug:slug>/scrapes/", views.ScrapeCreateView.as_view(), name="api-scrape-create"),
    path("advertisers/<slug:slug>/relaunch/", views.RelaunchView.as_view(), name="api-relaunch"),
    path("advertisers/<slug:slug>/sitemap/", views.SitemapView.as_view(), name="api-sitemap"),
    path("scrapes/<int:scrape_id>/", views.ScrapeDetailView.as_view(), name="api-scrape"),
    path("fixes/", views.FixesView.as_view(), name="api-fixes"),
]
