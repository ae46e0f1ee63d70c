"""A JSON parser for inventories: a scrape of 10,000 vehicles x 12 URLs is ~10 MB, beyond Django's global
DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), which stays as it is for every other endpoint."""

from django.conf import settings

from core.json_input import StrictJSONParser


class InventoryJSONParser(StrictJSONParser):
    """The API's checked JSON parser with the inventory's own size limit (SPOTCHECK_SITEMAP_MAX_BODY)."""

    def body_limit(self) -> int:
        return settings.SPOTCHECK_SITEMAP_MAX_BODY
