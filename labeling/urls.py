"""HTML pages of the labeling app."""

app_name = "labeling"
urlpatterns: list = []
