"""HTML pages of the sitemaps app."""

app_name = "sitemaps"
urlpatterns: list = []
