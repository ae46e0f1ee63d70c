"""With S3 (production), pictures live in a private bucket and pages link them by short-lived signed URLs: the
production storage options, applied to a local S3 (moto), give a thumbnail URL that works for minutes and an
object nobody can read without the signature."""

import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

from classification.services import image_from_bytes
from tests.support import production_read


def production_storage_options(tmp_path) -> dict:
    storage = production_read(
        "from django.conf import settings\nprint(json.dumps(settings.STORAGES['default']))",
        env={"AWS_STORAGE_BUCKET_NAME": "spotcheck-media"},
        var_dir=tmp_path,
    )
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    return storage["OPTIONS"]


@pytest.mark.django_db
def test_thumbnails_on_s3_are_private_and_linked_by_signed_urls_that_expire_within_minutes(
    media_bucket, settings, tmp_path, stock_red_jpeg
):
    production = production_storage_options(tmp_path)
    test_bucket = settings.STORAGES["default"]["OPTIONS"]
    options = {**production, "bucket_name": test_bucket["bucket_name"], "endpoint_url": test_bucket["endpoint_url"]}
    settings.STORAGES = {**settings.STORAGES, "default": {**settings.STORAGES["default"], "OPTIONS": options}}
    image = image_from_bytes(data=stock_red_jpeg)
    url = image.thumbnail.url
    query = parse_qs(urlsplit(url).query)
    expires = int(query["X-Amz-Expires"][0]) if "X-Amz-Expires" in query else int(query["Expires"][0]) - time.time()
    assert 0 < expires <= 300 + 5
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200 and answer.read()[:2] == b"\xff\xd8"
    unsigned = urlunsplit(urlsplit(url)._replace(query=""))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=10)
    assert refused.value.code == 403
