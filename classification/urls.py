"""HTML pages of the classification app."""

app_name = "classification"
urlpatterns: list = []
