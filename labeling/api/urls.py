"""API v1 routes of the labeling app."""

from django.urls import path

from labeling.api import views

urlpatterns = [
    path("campaigns/", views.CampaignListView.as_view(), name="api-campaigns"),
    path("campaigns/<int:pk>/next/", views.CampaignNextView.as_view(), name="api-campaign-next"),
    path("campaigns/<int:pk>/fill/", views.CampaignFillView.as_view(), name="api-campaign-fill"),
    path("campaigns/<int:pk>/votes.csv", views.CampaignVotesCsvView.as_view(), name="api-campaign-votes-csv"),
    path("votes/", views.VoteCreateView.as_view(), name="api-votes"),
    path("votes/batch/", views.VoteBatchView.as_view(), name="api-votes-batch"),
    path("votes/<str:ref>/", views.VoteDetailView.as_view(), name="api-vote"),
    path("items/<int:pk>/", views.ItemDetailView.as_view(), name="api-item"),
    path("items/<int:pk>/lease/", views.ItemLeaseView.as_view(), name="api-item-lease"),
]
