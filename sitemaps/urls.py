"""HTML pages of the sitemaps app."""

from django.urls import path

from sitemaps import views

app_name = "sitemaps"
urlpatterns = [
    path("", views.advertiser_list, name="list"),
    path("demo-pictures/<str:name>", views.demo_picture, name="demo-picture"),
    path("<slug:slug>/", views.review, name="review"),
    path("<slug:slug>/relaunch/", views.relaunch, name="relaunch"),
    path("<slug:slug>/history/", views.history, name="history"),
]
