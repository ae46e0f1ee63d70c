"""A JSON parser for inventories: a scrape of 10,000 vehicles x 12 URLs is ~10 MB, beyond Django's global
DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), which stays as it is for every other endpoint."""

import json

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import BaseParser

from core.errors import ApplicationError


class PayloadTooLarge(ApplicationError):
    code, status = "too_large", 413


class InventoryJSONParser(BaseParser):
    """Reads the request stream itself (DRF's JSONParser goes through request.body and its global cap)."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.SPOTCHECK_SITEMAP_MAX_BODY
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise PayloadTooLarge(f"The inventory is larger than {limit // (1024 * 1024)} MB.")
        try:
            return json.loads(data or b"{}")
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
