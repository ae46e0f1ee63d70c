"""POST /api/v1/classify/ with a picture uploaded as multipart, or an s3:// key of our bucket (moto's S3 as a real
local server): the same guards as a download, refusals in the API's error shape, and each answer's usage."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from classification.models import BackendCall, Image, ImageSource
from classification.synthetic import picture_bytes

ENDPOINT = "/api/v1/classify/"

pytestmark = pytest.mark.django_db


def upload(content: bytes, name: str = "car.jpg", content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def test_an_uploaded_picture_is_classified_and_its_usage_reported(api_as, reviewer, stock_red_jpeg):
    response = api_as(reviewer).post(ENDPOINT, {"file": upload(stock_red_jpeg)}, format="multipart")
    assert response.status_code == 200
    body = response.json()
    (result,) = body["results"]
    assert (result["url"], result["image_type"], result["color"], result["cached"]) == (
        "car.jpg",
        "Stock",
        "Red",
        False,
    )
    assert result["sha256"] == Image.objects.get().sha256
    assert body["usage"] == {"pictures": {"builtin": 1}, "estimated_cost": 0.0}
    again = api_as(reviewer).post(ENDPOINT, {"file": upload(stock_red_jpeg)}, format="multipart").json()
    assert again["results"][0]["cached"] is True
    assert again["usage"] == {"pictures": {}, "estimated_cost": 0.0}
    assert BackendCall.objects.count() == 1


def test_an_upload_over_the_byte_cap_is_413_and_nothing_is_stored(api_as, reviewer, settings, stock_red_jpeg):
    settings.SPOTCHECK_FETCH_MAX_BYTES = len(stock_red_jpeg) - 1
    response = api_as(reviewer).post(ENDPOINT, {"file": upload(stock_red_jpeg)}, format="multipart")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert not Image.objects.exists()


def test_a_body_far_over_the_byte_cap_is_refused_before_it_is_parsed(api_as, reviewer, settings):
    settings.SPOTCHECK_FETCH_MAX_BYTES = 1000
    big = picture_bytes(kind="dealer", color="Blue", width=1024, height=768, seed=3)
    assert len(big) > 1000 + 64 * 1024
    # Under a field name the serializer would refuse with a 400: the 413 shows the body was never parsed.
    response = api_as(reviewer).post(ENDPOINT, {"not-a-field": upload(big)}, format="multipart")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    settings.SPOTCHECK_FETCH_MAX_BYTES = len(big) + 1
    assert api_as(reviewer).post(ENDPOINT, {"not-a-field": upload(big)}, format="multipart").status_code == 400


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"<html>not a picture</html>", "not_an_image"),
        (None, "bad_image"),  # a truncated JPEG
    ],
    ids=["html", "truncated"],
)
def test_an_upload_that_is_not_a_picture_we_read_is_400_with_its_reason(
    api_as, reviewer, stock_red_jpeg, content, code
):
    content = content if content is not None else stock_red_jpeg[: len(stock_red_jpeg) // 2]
    response = api_as(reviewer).post(ENDPOINT, {"file": upload(content)}, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert not Image.objects.exists()


def test_an_upload_over_the_pixel_cap_is_400_before_decoding(api_as, reviewer, settings, stock_red_jpeg):
    settings.SPOTCHECK_MAX_PIXELS = 640 * 480 - 1
    response = api_as(reviewer).post(ENDPOINT, {"file": upload(stock_red_jpeg)}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_pixels"


def test_an_upload_beside_a_url_is_a_validation_error(api_as, reviewer, stock_red_jpeg):
    response = api_as(reviewer).post(
        ENDPOINT, {"file": upload(stock_red_jpeg), "url": "https://cdn.example.com/a.jpg"}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid" and "exactly one" in response.json()["error"]["message"]


def test_a_key_of_our_bucket_is_read_through_storage_and_recorded_as_a_source(
    api_as, reviewer, media_bucket, dealer_blue_jpeg
):
    media_bucket.put_object(Bucket="spotcheck-media", Key="uploads/blue car.jpg", Body=dealer_blue_jpeg)
    response = api_as(reviewer).post(ENDPOINT, {"key": "s3://spotcheck-media/uploads/blue car.jpg"}, format="json")
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert (result["image_type"], result["color"]) == ("Dealer", "Blue")
    assert ImageSource.objects.get().url == "s3://spotcheck-media/uploads/blue car.jpg"
    assert ImageSource.objects.get().image.sha256 == result["sha256"]


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        ("s3://someone-elses-bucket/a.jpg", 403, "foreign_bucket"),
        ("s3://spotcheck-media/missing.jpg", 404, "not_found"),
        ("https://spotcheck-media.s3.amazonaws.com/a.jpg", 400, "invalid_key"),
        ("s3://spotcheck-media/", 400, "invalid_key"),
    ],
    ids=["foreign", "missing", "not-s3", "no-key"],
)
def test_a_key_we_will_not_read_is_refused_in_the_error_shape(api_as, reviewer, media_bucket, key, status, code):
    response = api_as(reviewer).post(ENDPOINT, {"key": key}, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_a_bucket_object_over_the_byte_cap_is_413_without_downloading_it(
    api_as, reviewer, media_bucket, settings, stock_red_jpeg
):
    media_bucket.put_object(Bucket="spotcheck-media", Key="big.jpg", Body=stock_red_jpeg)
    settings.SPOTCHECK_FETCH_MAX_BYTES = 100
    response = api_as(reviewer).post(ENDPOINT, {"key": "s3://spotcheck-media/big.jpg"}, format="json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_a_key_without_a_configured_bucket_says_so(api_as, reviewer):
    response = api_as(reviewer).post(ENDPOINT, {"key": "s3://spotcheck-media/a.jpg"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "no_bucket"


def test_openapi_documents_the_upload_and_the_key(api_as, reviewer):
    schema = api_as(reviewer).get("/api/schema/", {"format": "json"}).json()
    body = schema["paths"]["/api/v1/classify/"]["post"]["requestBody"]["content"]
    upload_schema = schema["components"]["schemas"][body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert (upload_schema["properties"]["file"]["type"], upload_schema["properties"]["file"]["format"]) == (
        "string",
        "binary",
    )
    json_schema = schema["components"]["schemas"][body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert "key" in json_schema["properties"]
    assert {"413", "404", "403"} <= set(schema["paths"]["/api/v1/classify/"]["post"]["responses"])
