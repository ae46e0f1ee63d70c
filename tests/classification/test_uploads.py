"""POST /api/v1/classify/ with a picture uploaded as multipart, or an s3:// key of our bucket (moto's S3 as a real
local server): the same guards as a download, refusals in the API's error shape, and each answer's usage; the
bytes are staged in the request and decoded on the classify queue, never in the web process."""

import hashlib
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from classification import services
from classification.api.classify import REFUSALS
from classification.labels import usage_report
from classification.models import BackendCall, Image, ImageSource
from classification.synthetic import picture_bytes
from classification.tasks import classify as tasks
from core.models import TaskOutbox
from core.outbox import outbox_deliver

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


# --- through the pipeline: hashed, header-checked and staged in the request, decoded on the classify queue ---


@pytest.fixture
def held(monkeypatch):
    """Stage 2 requests caught and not run, as when no classify process takes them before the deadline."""
    sent: list[tuple] = []
    monkeypatch.setattr(tasks.image_classify, "delay", lambda *args: sent.append(args))
    return sent


def post_picture(api, via: str, data: bytes, bucket=None):
    """POST the bytes as a multipart upload (``via="file"``) or as an object of our bucket (``"key"``)."""
    if via == "file":
        return api.post(ENDPOINT, {"file": upload(data)}, format="multipart")
    bucket.put_object(Bucket="spotcheck-media", Key="in/car.jpg", Body=data)
    return api.post(ENDPOINT, {"key": KEY}, format="json")


KEY = "s3://spotcheck-media/in/car.jpg"


def test_a_new_upload_is_staged_and_sent_to_the_classify_queue_without_being_decoded_in_the_request(
    api_as, reviewer, settings, stock_red_jpeg, decodes, held
):
    settings.SPOTCHECK_CLASSIFY_API_DEADLINE = 0.2
    response = api_as(reviewer).post(ENDPOINT, {"file": upload(stock_red_jpeg)}, format="multipart")
    assert response.status_code == 200
    (result,) = response.json()["results"]
    image = Image.objects.get()
    assert (result["error"], result["sha256"], result["image_type"]) == ("timeout", image.sha256, "Placeholder")
    assert decodes == [] and held == [(image.pk,)]
    assert image.classified_at is None and not image.thumbnail
    assert default_storage.exists(services._original_path(image.sha256))

    tasks.image_classify.apply(args=held[0])  # a classify process takes it after the deadline
    assert len(decodes) == 1 and Image.objects.get().classified_at is not None
    assert not default_storage.exists(services._original_path(image.sha256))
    again = api_as(reviewer).post(ENDPOINT, {"file": upload(stock_red_jpeg)}, format="multipart").json()
    (result,) = again["results"]
    assert (result["image_type"], result["color"], result["cached"], result["error"]) == ("Stock", "Red", True, None)
    assert len(held) == 1 and len(decodes) == 1  # a hit: nothing sent, nothing decoded


def test_a_new_bucket_key_is_read_and_staged_and_its_source_recorded_before_the_classify_queue_decodes_it(
    api_as, reviewer, settings, media_bucket, dealer_blue_jpeg, decodes, held
):
    settings.SPOTCHECK_CLASSIFY_API_DEADLINE = 0.2
    response = post_picture(api_as(reviewer), "key", dealer_blue_jpeg, media_bucket)
    assert response.status_code == 200 and response.json()["results"][0]["error"] == "timeout"
    image = Image.objects.get()
    assert decodes == [] and held == [(image.pk,)]
    assert (ImageSource.objects.get().url, ImageSource.objects.get().image) == (KEY, image)
    tasks.image_classify.apply(args=held[0])
    (result,) = post_picture(api_as(reviewer), "key", dealer_blue_jpeg, media_bucket).json()["results"]
    assert (result["image_type"], result["color"], result["cached"]) == ("Dealer", "Blue", True)
    assert len(held) == 1 and len(decodes) == 1


@pytest.mark.parametrize("via", ["file", "key"])
def test_with_tasks_run_at_once_the_answer_is_the_one_classifying_in_the_request_gives(
    api_as, reviewer, request, dealer_blue_jpeg, via
):
    bucket = request.getfixturevalue("media_bucket") if via == "key" else None
    name = KEY if via == "key" else "car.jpg"

    def in_process() -> dict:
        started = timezone.now()
        outcome = services.bytes_classify(data=dealer_blue_jpeg, name=name, record_source=via == "key")
        usage = usage_report(image_ids=[outcome.image_id], since=started)
        return {"results": [outcome.as_result()], "usage": usage.as_dict()}

    queued = [post_picture(api_as(reviewer), via, dealer_blue_jpeg, bucket).json() for _ in range(2)]
    queued_sources = list(ImageSource.objects.values_list("url", "error", "last_status", "check_count"))
    Image.objects.all().delete()
    ImageSource.objects.all().delete()
    cache.clear()
    assert queued == [in_process(), in_process()]  # new, then a hit
    assert queued[0]["results"][0]["cached"] is False and queued[0]["usage"]["pictures"] == {"builtin": 1}
    assert list(ImageSource.objects.values_list("url", "error", "last_status", "check_count")) == queued_sources


@pytest.mark.parametrize("via", ["file", "key"])
def test_bytes_that_pass_the_header_check_but_do_not_decode_are_refused_by_stage_2_with_the_same_400(
    api_as, reviewer, request, monkeypatch, stock_red_jpeg, via
):
    bucket = request.getfixturevalue("media_bucket") if via == "key" else None
    sent, original = [], tasks.image_classify.delay
    monkeypatch.setattr(tasks.image_classify, "delay", lambda *a: (sent.append(a), original(*a))[1])
    truncated = stock_red_jpeg[: len(stock_red_jpeg) // 2]
    response = post_picture(api_as(reviewer), via, truncated, bucket)
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "bad_image", "message": REFUSALS["bad_image"]}
    assert len(sent) == 1  # the request staged it; stage 2 refused it
    assert not Image.objects.exists()
    assert not default_storage.exists(services._original_path(hashlib.sha256(truncated).hexdigest()))
    if via == "key":
        source = ImageSource.objects.get()
        assert (source.url, source.image, source.error) == (KEY, None, "bad_image")


@pytest.mark.django_db(transaction=True)
def test_an_upload_answers_timeout_while_the_broker_is_down_and_its_picture_waits_in_the_outbox(
    api_as, reviewer, settings, broker_unreachable, stock_red_jpeg, decodes
):
    settings.SPOTCHECK_CLASSIFY_API_DEADLINE = 0.5
    response = api_as(reviewer).post(ENDPOINT, {"file": upload(stock_red_jpeg)}, format="multipart")
    assert response.status_code == 200 and response.json()["results"][0]["error"] == "timeout"
    (row,) = TaskOutbox.objects.all()
    assert (row.task, row.args, row.attempts) == ("classification.image_classify", [Image.objects.get().pk], 1)
    assert decodes == []
    broker_unreachable.restore()
    assert outbox_deliver(older_than=timedelta(0)) == 1  # the broker is back: the sweep sends it
    (result,) = api_as(reviewer).post(ENDPOINT, {"file": upload(stock_red_jpeg)}, format="multipart").json()["results"]
    assert (result["image_type"], result["cached"], result["error"]) == ("Stock", True, None)
