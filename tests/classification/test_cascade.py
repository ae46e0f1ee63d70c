"""The cascade backend: the builtin model first, only the pictures it is unsure of sent to the paid backend
(the local fake Azure), and each run's report of pictures per backend and estimated cost."""

from decimal import Decimal

import pytest

from classification import services
from classification.classifiers import classifier_for
from classification.classifiers.builtin import BuiltinClassifier
from classification.imaging import decode
from classification.models import BackendCall, ImageLabel, ModelVersion, Prediction
from classification.synthetic import picture_bytes
from tests.fakes.azure import FakeAzureVision, answer, unavailable

pytestmark = pytest.mark.django_db

CAR = answer(tags=[("car", 0.97), ("beach", 0.8)], foreground="Red", background="White")


@pytest.fixture
def azure(settings):
    fake = FakeAzureVision(key="k", responder=lambda _p: CAR).start()
    settings.SPOTCHECK_AZURE_VISION_ENDPOINT = fake.endpoint
    settings.SPOTCHECK_AZURE_VISION_KEY = "k"
    settings.SPOTCHECK_CLASSIFIER_BACKEND = "cascade"
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def pictures():
    """Two pictures and the builtin's image-type score for each (the threshold goes between them)."""
    sure = picture_bytes(kind="dealer", color="Blue", width=640, height=480, seed=22)
    unsure = picture_bytes(kind="stock", color="Red", width=640, height=480, seed=21)
    builtin = BuiltinClassifier(ModelVersion(name="b", backend="builtin"))
    scores = [builtin.classify(decode(data).picture)["image_type"][1] for data in (sure, unsure)]
    return {"sure": sure, "unsure": unsure, "scores": scores}


def cascade(threshold: float) -> ModelVersion:
    return ModelVersion.objects.create(
        name=f"cascade-{threshold}",
        backend="cascade",
        status=ModelVersion.Status.ACTIVE,
        params={"local": "builtin", "paid": "azure", "thresholds": {"image_type": threshold}},
    )


def between(scores: list[float]) -> float:
    high, low = scores
    assert high > low, "the generated photo should be the picture the builtin is surer of"
    return (high + low) / 2


def test_a_confident_local_answer_never_reaches_the_paid_backend(azure, pictures):
    version = cascade(0.0)
    values = classifier_for(version).classify(decode(pictures["unsure"]).picture)
    assert values["image_type"][0] == "Stock"
    assert azure.seen == []


def test_an_unsure_picture_is_answered_by_the_paid_backend_and_costs_one_call(azure, pictures, api_as, reviewer):
    cascade(between(pictures["scores"]))
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = api_as(reviewer)
    sure = client.post(
        "/api/v1/classify/", {"file": SimpleUploadedFile("s.jpg", pictures["sure"])}, format="multipart"
    ).json()
    unsure = client.post(
        "/api/v1/classify/", {"file": SimpleUploadedFile("u.jpg", pictures["unsure"])}, format="multipart"
    ).json()
    assert len(azure.seen) == 1
    assert sure["usage"] == {"pictures": {"builtin": 1}, "estimated_cost": 0.0}
    assert unsure["usage"] == {"pictures": {"azure": 1, "builtin": 1}, "estimated_cost": 0.001}
    result = unsure["results"][0]
    assert (result["image_type"], result["color"]) == ("Stock", "Red")
    assert result["scores"]["image_type"] == 0.97  # the paid backend's score
    assert result["model"].startswith("cascade-")
    azure_version = ModelVersion.objects.get(backend="azure")
    assert set(ImageLabel.objects.filter(model_version=azure_version).values_list("name", flat=True)) == {
        "car",
        "beach",
    }
    assert BackendCall.objects.filter(backend="azure").get().cost == Decimal("0.001")


def test_a_failing_paid_backend_leaves_the_local_answer(azure, pictures):
    version = cascade(1.0)
    azure.script = [unavailable()]
    local = BuiltinClassifier(ModelVersion(name="b", backend="builtin")).classify(decode(pictures["unsure"]).picture)
    values = classifier_for(version).classify(decode(pictures["unsure"]).picture)
    assert values == local and len(azure.seen) == 1


def test_a_batch_reports_pictures_per_backend_and_cost(
    azure, pictures, api_as, reviewer, picture_server, allow_loopback, settings
):
    cascade(between(pictures["scores"]))
    ModelVersion.objects.create(
        name="azure-priced", backend="azure", status=ModelVersion.Status.ACTIVE, params={"price_per_1000": 2.5}
    )
    picture_server.serve("/sure.jpg", pictures["sure"])
    picture_server.serve("/unsure.jpg", pictures["unsure"])
    urls = [picture_server.url("/sure.jpg"), picture_server.url("/unsure.jpg"), picture_server.url("/sure.jpg")]
    body = api_as(reviewer).post("/api/v1/classify/", {"urls": urls}, format="json").json()
    assert body["usage"] == {"pictures": {"azure": 1, "builtin": 2}, "estimated_cost": 0.0025}
    assert Prediction.objects.filter(model_version__backend="cascade").count() == 4


def test_a_cascade_of_two_paid_or_two_local_backends_is_refused(azure):
    with pytest.raises(ValueError, match="cannot be used here"):
        classifier_for(ModelVersion(name="x", backend="cascade", params={"local": "azure", "paid": "azure"}))
    with pytest.raises(ValueError, match="cannot be used here"):
        classifier_for(ModelVersion(name="y", backend="cascade", params={"local": "builtin", "paid": "builtin"}))


def test_the_classify_stage_of_a_scrape_records_labels_and_backend_calls(
    azure, pictures, picture_server, allow_loopback
):
    cascade(between(pictures["scores"]))
    picture_server.serve("/sure.jpg", pictures["sure"])
    picture_server.serve("/unsure.jpg", pictures["unsure"])
    checks = services.urls_check(urls=[picture_server.url("/sure.jpg"), picture_server.url("/unsure.jpg")])
    assert BackendCall.objects.count() == 0  # stage 1 only downloads and keys
    results = services.images_classify(image_ids=[c.image_id for c in checks.values()])
    assert {r.status for r in results.values()} == {"classified"}
    assert sorted(BackendCall.objects.values_list("backend", flat=True)) == ["azure", "builtin", "builtin"]
    unsure = checks[picture_server.url("/unsure.jpg")].image_id
    assert set(ImageLabel.objects.filter(image_id=unsure).values_list("name", flat=True)) == {"car", "beach"}
