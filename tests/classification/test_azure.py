"""The azure backend against a local server that answers like Azure AI Vision Image Analysis 3.2, errors
included: what it sends, how answers map to our values, which failures are worth retrying, and the labels
and calls it leaves behind."""

import time
from decimal import Decimal

import pytest

from classification.classifiers import ClassifierError, classifier_for
from classification.labels import images_tagged
from classification.models import BackendCall, ImageLabel, ModelVersion, Prediction
from classification.services import image_from_bytes
from classification.synthetic import picture
from classification.vocabulary import Attribute
from tests.fakes.azure import FakeAzureVision, answer, internal_error, throttled, unavailable

CAR_ON_WHITE = answer(
    tags=[("car", 0.99), ("vehicle", 0.97), ("wheel", 0.93), ("white background", 0.9)],
    objects=[("car", 0.88, "Land vehicle", "Vehicle")],
    foreground="Red",
    background="White",
)


@pytest.fixture
def azure(settings):
    fake = FakeAzureVision(key="k-123").start()
    settings.SPOTCHECK_AZURE_VISION_ENDPOINT = fake.endpoint
    settings.SPOTCHECK_AZURE_VISION_KEY = "k-123"
    try:
        yield fake
    finally:
        fake.stop()


def azure_version(**params) -> ModelVersion:
    return ModelVersion(name="azure-1", backend="azure", params={"timeout": 5, **params})


def classify(**picture_args):
    args = {"kind": "stock", "color": "Red", "width": 320, "height": 240, **picture_args}
    return classifier_for(azure_version()).classify(picture(**args))


def test_azure_sends_the_jpeg_with_the_key_and_the_three_features(azure):
    azure.responder = lambda _picture: CAR_ON_WHITE
    classify()
    request = azure.seen[0]
    assert request["path"] == "/vision/v3.2/analyze"
    assert request["query"]["visualFeatures"] == ["Tags,Objects,Color"]
    assert request["headers"]["ocp-apim-subscription-key"] == "k-123"
    assert request["headers"]["content-type"] == "application/octet-stream"


def test_azure_maps_a_car_on_a_white_background_to_stock_in_the_foreground_colour(azure):
    azure.responder = lambda _picture: CAR_ON_WHITE
    assert classify() == {Attribute.IMAGE_TYPE: ("Stock", 0.99), Attribute.COLOR: ("Red", None)}


def test_azure_maps_a_car_in_a_street_to_dealer_and_gray_to_grey(azure):
    azure.responder = lambda _p: answer(tags=[("outdoor", 0.99), ("car", 0.91)], foreground="Gray", background="Grey")
    assert classify(kind="dealer") == {Attribute.IMAGE_TYPE: ("Dealer", 0.91), Attribute.COLOR: ("Grey", None)}


def test_azure_without_a_vehicle_maps_text_to_placeholder_through_the_label_map(azure):
    azure.responder = lambda _p: answer(tags=[("text", 0.98), ("font", 0.9), ("screenshot", 0.8)])
    assert classify(kind="placeholder") == {Attribute.IMAGE_TYPE: ("Placeholder", 0.98), Attribute.COLOR: (None, None)}


def test_azure_label_map_and_vehicle_labels_are_configurable(azure):
    azure.responder = lambda _p: answer(tags=[("banner", 0.95), ("limousine", 0.6)])
    plain = classifier_for(azure_version()).classify(picture(kind="dealer", color="Red", width=320, height=240))
    assert plain[Attribute.IMAGE_TYPE] == (None, None)  # neither label is known by default
    configured = classifier_for(azure_version(label_map={"banner": "Placeholder"}, min_confidence=0.9))
    assert configured.classify(picture(kind="dealer", color="Red", width=320, height=240))[Attribute.IMAGE_TYPE] == (
        "Placeholder",
        0.95,
    )
    as_vehicle = classifier_for(azure_version(vehicle_labels=["limousine"], min_confidence=0.5))
    assert as_vehicle.classify(picture(kind="dealer", color="Red", width=320, height=240))[Attribute.IMAGE_TYPE] == (
        "Stock",
        0.6,
    )


def test_azure_below_min_confidence_is_no_value(azure):
    azure.responder = lambda _p: answer(tags=[("car", 0.3)])
    assert classify() == {Attribute.IMAGE_TYPE: (None, None), Attribute.COLOR: (None, None)}


def test_azure_throttling_with_a_short_retry_after_is_waited_for_and_retried(azure):
    azure.responder = lambda _p: CAR_ON_WHITE
    azure.script = [throttled(retry_after=0)]
    assert classify()[Attribute.IMAGE_TYPE] == ("Stock", 0.99)
    assert len(azure.seen) == 2


def test_azure_throttling_with_a_long_retry_after_is_handed_to_the_caller(azure):
    azure.script = [throttled(retry_after=30)]
    started = time.monotonic()
    with pytest.raises(ClassifierError) as failure:
        classify()
    assert failure.value.transient and failure.value.retry_after == 30
    assert "Rate limit is exceeded" in str(failure.value)
    assert len(azure.seen) == 1 and time.monotonic() - started < 5


def test_azure_throttling_with_an_http_date_retry_after_is_handed_to_the_caller(azure):
    from tests.fakes.azure import Scripted

    from .test_retry_after import retry_after_header

    azure.script = [
        Scripted(429, {"error": {"code": "429", "message": "slow"}}, {"Retry-After": retry_after_header("http-date")})
    ]
    with pytest.raises(ClassifierError) as failure:
        classify()
    assert failure.value.transient and 85 <= failure.value.retry_after <= 90
    assert len(azure.seen) == 1


def test_azure_keeps_throttling_past_its_retries_and_gives_up_transiently(azure):
    azure.script = [throttled(retry_after=0)] * 3
    with pytest.raises(ClassifierError) as failure:
        classifier_for(azure_version(max_retries=2)).classify(picture(kind="stock", color="Red", width=320, height=240))
    assert failure.value.transient and len(azure.seen) == 3


@pytest.mark.parametrize("scripted", [unavailable(), internal_error()], ids=["503", "500"])
def test_azure_server_errors_are_transient(azure, scripted):
    azure.script = [scripted]
    with pytest.raises(ClassifierError) as failure:
        classify()
    assert failure.value.transient and failure.value.retry_after is None


def test_azure_wrong_key_is_final_with_the_service_message(azure, settings):
    settings.SPOTCHECK_AZURE_VISION_KEY = "wrong"
    with pytest.raises(ClassifierError) as failure:
        classify()
    assert not failure.value.transient
    assert "401" in str(failure.value) and "Access denied" in str(failure.value)


def test_azure_refusing_a_too_small_picture_is_final_with_its_inner_code(azure):
    with pytest.raises(ClassifierError) as failure:
        classify(width=40, height=30)
    assert not failure.value.transient
    assert "400 InvalidImageSize" in str(failure.value)


def test_azure_unreachable_is_transient(settings):
    settings.SPOTCHECK_AZURE_VISION_ENDPOINT = "http://127.0.0.1:1"
    settings.SPOTCHECK_AZURE_VISION_KEY = "k"
    with pytest.raises(ClassifierError) as failure:
        classify()
    assert failure.value.transient


def test_azure_without_endpoint_or_key_is_final(settings):
    settings.SPOTCHECK_AZURE_VISION_ENDPOINT = ""
    with pytest.raises(ClassifierError) as failure:
        classify()
    assert not failure.value.transient


@pytest.mark.django_db
def test_azure_labels_are_stored_per_picture_and_version_and_searchable(azure, settings, stock_red_jpeg):
    settings.SPOTCHECK_CLASSIFIER_BACKEND = "azure"
    version = azure_version(price_per_1000=1.5)
    version.status = ModelVersion.Status.ACTIVE
    version.save()
    azure.responder = lambda _p: CAR_ON_WHITE
    image = image_from_bytes(data=stock_red_jpeg)
    assert Prediction.objects.get(image=image, attribute="image_type").value == "Stock"
    labels = dict(ImageLabel.objects.filter(image=image, model_version=version).values_list("name", "score"))
    assert labels["car"] == 0.99 and labels["land vehicle"] == 0.88 and "white background" in labels
    assert list(images_tagged(tag="Land Vehicle")) == [image]
    assert list(images_tagged(tag="car", min_score=0.995)) == []
    call = BackendCall.objects.get(image=image)
    assert (call.backend, call.cost) == ("azure", Decimal("0.0015"))


def test_a_task_retry_waits_at_least_what_the_service_asked_for(azure):
    from core.retry import RETRY

    azure.script = [throttled(retry_after=120)]
    with pytest.raises(ClassifierError) as failure:
        classify()
    assert all(RETRY.countdown(0, retry_after=failure.value.retry_after) >= 120 for _ in range(20))
    assert RETRY.countdown(0, retry_after=10**6) == RETRY.retry_after_cap
