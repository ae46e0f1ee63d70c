"""Exports written to S3 (moto) through django-storages, downloaded through short-lived presigned URLs."""

import io
import zipfile
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import requests
from moto import mock_aws

from datasets.export import export_params_build, export_run
from datasets.services import export_request

pytestmark = pytest.mark.django_db

BUCKET = "spotcheck-exports-test"


@pytest.fixture
def s3(settings, monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "region_name": "us-east-1",
                    "default_acl": None,
                    "querystring_auth": True,
                    "querystring_expire": 120,
                    "file_overwrite": False,
                    "signature_version": "s3v4",
                },
            },
        }
        yield client


def test_export_goes_to_s3_and_downloads_through_a_presigned_url(s3, api_as, admin_user, make_image, truth):
    images = [make_image() for _ in range(6)]  # thumbnails are stored in the bucket too
    for i, image in enumerate(images):
        truth(image, ["Dealer", "Stock", "Placeholder"][i % 3])
    export = export_request(params=export_params_build(attribute="image_type", seed=1), enqueue=False)
    export = export_run(export_id=export.pk)

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert export.file.name in keys and export.manifest.name in keys

    response = api_as(admin_user).get(f"/api/v1/exports/{export.pk}/download/")

    assert response.status_code == 302
    url = response["Location"]
    query = parse_qs(urlparse(url).query)
    assert "X-Amz-Signature" in query
    assert query["X-Amz-Expires"] == ["120"]  # short-lived
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(fetched.content))
    manifest = archive.read("manifest.csv").decode().splitlines()
    assert len(manifest) == 1 + 6
    picture_names = [n for n in archive.namelist() if n.endswith(".jpg")]
    assert len(picture_names) == 6
    assert archive.read(picture_names[0])[:2] == b"\xff\xd8"


def test_manifest_only_export_to_s3_has_its_own_presigned_manifest(s3, admin_client, make_image, truth):
    truth(make_image(), "Dealer", url="https://cdn.example/1.jpg")
    export = export_request(params=export_params_build(attribute="image_type"), manifest_only=True, enqueue=False)
    export = export_run(export_id=export.pk)

    response = admin_client.get(f"/datasets/{export.pk}/manifest.csv")

    assert response.status_code == 302
    body = requests.get(response["Location"], timeout=10).content.decode()
    assert body.startswith("sha256,split,label") and "https://cdn.example/1.jpg" in body
