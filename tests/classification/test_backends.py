"""The http (TensorFlow Serving REST) and rekognition backends behind the classifier interface, and what a
failing backend means: no value, never a crash, retried only when transient."""

import base64
import io
import json

import boto3
import pytest
from botocore.stub import Stubber
from PIL import Image as PILImage

from classification.classifiers import ClassifierError, classifier_for
from classification.classifiers.rekognition import RekognitionClassifier
from classification.models import ModelVersion, Prediction
from classification.services import image_from_bytes
from classification.synthetic import picture
from classification.vocabulary import Attribute

from .conftest import Reply
from .test_retry_after import SPELLINGS, retry_after_header

LABELS = {"image_type": ["dealer", "stock", "placeholder"], "color": ["black", "blue", "red"]}
LABEL_MAP = {"dealer": "Dealer", "stock": "Stock", "placeholder": "Placeholder"}


@pytest.fixture
def model_server(picture_server):
    """A fake TensorFlow Serving: records the instances it was sent, answers what the test sets (a Reply, or a
    function returning the next one)."""
    state = {"answer": Reply(200, b"{}"), "bodies": [], "paths": []}

    def predict(handler):
        length = int(handler.headers.get("Content-Length", 0))
        state["bodies"].append(json.loads(handler.rfile.read(length)))
        state["paths"].append(handler.path)
        reply = state["answer"]() if callable(state["answer"]) else state["answer"]
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(reply.body)

    picture_server.httpd.RequestHandlerClass.do_POST = lambda h: predict(h)
    state["server"] = picture_server
    return state


def http_version(base: str, **extra) -> ModelVersion:
    params = {"url": base, "model": "spotcheck", "labels": LABELS, "label_map": LABEL_MAP, "timeout": 2, **extra}
    return ModelVersion(name="tfs-1", backend="http", params=params)


def predictions(**outputs) -> Reply:
    return Reply(200, json.dumps({"predictions": [outputs]}).encode())


def test_http_backend_speaks_the_tf_serving_predict_api(model_server):
    model_server["answer"] = predictions(image_type=[0.1, 0.8, 0.1], color=[0.05, 0.15, 0.8])
    clf = classifier_for(http_version(model_server["server"].base))
    values = clf.classify(picture(kind="stock", color="Red", width=320, height=240))
    assert values == {"image_type": ("Stock", 0.8), "color": ("Red", 0.8)}
    body = model_server["bodies"][0]
    sent = PILImage.open(io.BytesIO(base64.b64decode(body["instances"][0]["b64"])))
    assert sent.format == "JPEG" and sent.size == (320, 240)
    assert model_server["paths"] == ["/v1/models/spotcheck:predict"]


def test_http_backend_below_min_score_is_no_value(model_server):
    model_server["answer"] = predictions(image_type=[0.4, 0.35, 0.25], color=[0.34, 0.33, 0.33])
    values = classifier_for(http_version(model_server["server"].base, min_score=0.5)).classify(
        picture(kind="stock", color="Red")
    )
    assert values == {"image_type": (None, None), "color": (None, None)}


@pytest.mark.parametrize(
    ("reply", "transient"),
    [
        (Reply(503, b"overloaded"), True),
        (Reply(429, b"slow down"), True),
        (Reply(400, b'{"error": "bad input"}'), False),
        (Reply(408, b"request timeout"), False),  # the one policy: no 4xx but 429 is worth a retry
        (Reply(200, b"not json"), False),
        (Reply(200, b'{"predictions": [{"image_type": [1.0]}]}'), False),  # wrong number of labels
    ],
    ids=["503", "429", "400", "408", "garbage", "shape"],
)
def test_http_backend_failures_say_whether_they_are_transient(model_server, reply, transient):
    model_server["answer"] = reply
    with pytest.raises(ClassifierError) as failure:
        classifier_for(http_version(model_server["server"].base)).classify(picture(kind="stock", color="Red"))
    assert failure.value.transient is transient


@pytest.mark.parametrize("spelling", ["seconds", "http-date"])
def test_http_backend_throttling_hands_its_retry_after_to_the_policy(model_server, spelling):
    model_server["answer"] = Reply(429, b"slow down", {"Retry-After": retry_after_header(spelling)})
    with pytest.raises(ClassifierError) as failure:
        classifier_for(http_version(model_server["server"].base)).classify(picture(kind="stock", color="Red"))
    assert failure.value.transient
    assert SPELLINGS[spelling] - 5 <= failure.value.retry_after <= SPELLINGS[spelling]


@pytest.mark.django_db
def test_stage_2_waits_for_a_throttling_backends_retry_after(model_server, settings, stock_red_jpeg, retry_waits):
    from classification.tasks import classify as tasks
    from tests.classification.test_tasks import run_like_a_worker

    settings.SPOTCHECK_CLASSIFIER_BACKEND = "http"
    version = http_version(model_server["server"].base)
    version.status = ModelVersion.Status.ACTIVE
    version.save()
    model_server["answer"] = Reply(503, b"down")
    image = image_from_bytes(data=stock_red_jpeg)  # stored without values: the backend failed
    model_server["answer"] = Reply(429, b"slow down", {"Retry-After": "42"})
    run_like_a_worker(tasks.image_classify, image.pk)
    assert len(retry_waits) == tasks.image_classify.max_retries
    assert all(asked == 42 and waited >= 42 for asked, waited in retry_waits)


@pytest.mark.django_db
def test_a_scrape_whose_backend_throttles_classifies_its_pictures_after_the_retry_after(
    model_server, allow_loopback, settings, stock_red_jpeg, retry_waits, django_capture_on_commit_callbacks
):
    from sitemaps.ingest import advertiser_ensure, inventory_parse, scrape_ingest

    settings.SPOTCHECK_CLASSIFIER_BACKEND = "http"
    server = model_server["server"]
    version = http_version(server.base)
    version.status = ModelVersion.Status.ACTIVE
    version.save()
    throttled = iter([Reply(429, b"slow down", {"Retry-After": "42"})])
    answer = predictions(image_type=[0.9, 0.05, 0.05], color=[0.1, 0.1, 0.8])
    model_server["answer"] = lambda: next(throttled, answer)
    server.serve("/car.jpg", stock_red_jpeg)
    payload = {"vehicles": [{"external_id": "A", "images": [server.url("/car.jpg")]}]}
    with django_capture_on_commit_callbacks(execute=True):
        scrape = scrape_ingest(advertiser=advertiser_ensure(slug="busy"), vehicles=inventory_parse(payload=payload))
    scrape.refresh_from_db()
    assert (scrape.status, scrape.done, scrape.failed) == ("done", 1, 0)
    assert len(model_server["bodies"]) == 2  # throttled once, then answered
    assert Prediction.objects.get(model_version=version, attribute="image_type").value == "Dealer"
    ((asked, waited),) = [w for w in retry_waits if w[0] is not None]
    assert asked == 42 and waited >= 42


def test_http_backend_unreachable_is_transient():
    with pytest.raises(ClassifierError) as failure:
        classifier_for(http_version("http://127.0.0.1:1")).classify(picture(kind="stock", color="Red"))
    assert failure.value.transient


@pytest.mark.django_db
def test_failing_backend_yields_no_value_and_the_picture_is_classified_later(model_server, settings, stock_red_jpeg):
    settings.SPOTCHECK_CLASSIFIER_BACKEND = "http"
    version = http_version(model_server["server"].base)
    version.status = ModelVersion.Status.ACTIVE
    version.save()
    model_server["answer"] = Reply(503, b"down")
    image = image_from_bytes(data=stock_red_jpeg)
    assert image.classified_at is None and not Prediction.objects.filter(image=image).exists()
    model_server["answer"] = predictions(image_type=[0.9, 0.05, 0.05], color=[0.1, 0.1, 0.8])
    image = image_from_bytes(data=stock_red_jpeg)  # the same bytes again: not yet classified, so it runs
    assert image.classified_at is not None
    assert dict(Prediction.objects.filter(image=image).values_list("attribute", "model_version__name")) == {
        "image_type": "tfs-1",
        "color": "tfs-1",
    }


def rekognition_with_stub():
    client = boto3.client("rekognition", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    version = ModelVersion(name="rek-1", backend="rekognition", params={"region": "eu-west-1"})
    return RekognitionClassifier(version, client=client), Stubber(client)


def _color(name, pct, rgb):
    return {"Red": rgb[0], "Green": rgb[1], "Blue": rgb[2], "SimplifiedColor": name, "PixelPercent": pct}


def test_rekognition_maps_a_car_on_white_to_stock_with_the_car_colour():
    clf, stub = rekognition_with_stub()
    answer = {
        "Labels": [
            {
                "Name": "Car",
                "Confidence": 97.5,
                "Instances": [
                    {
                        "Confidence": 96.0,
                        "DominantColors": [_color("red", 60.0, (190, 30, 30)), _color("black", 20.0, (20, 20, 20))],
                    }
                ],
                "Parents": [{"Name": "Vehicle"}],
            },
            {"Name": "Wheel", "Confidence": 90.0, "Instances": [], "Parents": []},
        ],
        "ImageProperties": {"Background": {"DominantColors": [_color("white", 85.0, (255, 255, 255))]}},
    }
    stub.add_response("detect_labels", answer)
    with stub:
        values = clf.classify(picture(kind="stock", color="Red", width=320, height=240))
    stub.assert_no_pending_responses()
    assert values[Attribute.IMAGE_TYPE] == ("Stock", 0.975)
    assert values[Attribute.COLOR] == ("Red", 0.75)


def test_rekognition_without_a_vehicle_maps_text_to_placeholder():
    clf, stub = rekognition_with_stub()
    stub.add_response(
        "detect_labels", {"Labels": [{"Name": "Text", "Confidence": 99.0, "Instances": [], "Parents": []}]}
    )
    with stub:
        values = clf.classify(picture(kind="placeholder", color="Red", width=320, height=240))
    assert values == {Attribute.IMAGE_TYPE: ("Placeholder", 0.99), Attribute.COLOR: (None, None)}


def test_rekognition_names_an_unmapped_colour_by_its_rgb():
    clf, stub = rekognition_with_stub()
    car = {"Name": "Car", "Confidence": 90.0, "Instances": [], "Parents": []}
    stub.add_response(
        "detect_labels",
        {
            "Labels": [car],
            "ImageProperties": {
                "Foreground": {"DominantColors": [_color("", 70.0, (30, 65, 160))]},
                "Background": {"DominantColors": [_color("gray", 80.0, (90, 90, 90))]},
            },
        },
    )
    with stub:
        values = clf.classify(picture(kind="dealer", color="Blue", width=320, height=240))
    assert values == {Attribute.IMAGE_TYPE: ("Dealer", 0.9), Attribute.COLOR: ("Blue", 1.0)}


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        ("ThrottlingException", True),
        ("InternalServerError", True),
        ("InvalidImageFormatException", False),
        ("AccessDeniedException", False),
    ],
)
def test_rekognition_errors_are_transient_only_when_retrying_can_help(code, transient):
    clf, stub = rekognition_with_stub()
    stub.add_client_error("detect_labels", service_error_code=code, http_status_code=400)
    with stub, pytest.raises(ClassifierError) as failure:
        clf.classify(picture(kind="stock", color="Red", width=64, height=48))
    assert failure.value.transient is transient


def test_rekognition_5xx_is_transient_whatever_its_code_and_carries_retry_after():
    clf, stub = rekognition_with_stub()
    stub.add_client_error(
        "detect_labels",
        service_error_code="SlowDown",
        http_status_code=503,
        response_meta={"HTTPHeaders": {"retry-after": "42"}},
    )
    with stub, pytest.raises(ClassifierError) as failure:
        clf.classify(picture(kind="stock", color="Red", width=64, height=48))
    assert failure.value.transient and failure.value.retry_after == 42
