"""GET /api/v1/images/?tag=…: pictures by the labels backends gave them, staff only."""

import pytest

from classification.classifiers import Description
from classification.labels import description_record
from classification.models import ModelVersion
from classification.services import image_from_bytes
from classification.synthetic import picture_bytes

pytestmark = pytest.mark.django_db
ENDPOINT = "/api/v1/images/"


@pytest.fixture
def tagged():
    azure = ModelVersion.objects.create(name="azure-a", backend="azure")
    rekognition = ModelVersion.objects.create(name="rek-a", backend="rekognition")
    beach = image_from_bytes(data=picture_bytes(kind="dealer", color="Blue", width=320, height=240, seed=11))
    logo = image_from_bytes(data=picture_bytes(kind="placeholder", color="Red", width=320, height=240, seed=12))
    description_record(image=beach, description=Description({}, {"beach": 0.91, "car": 0.99}, azure))
    description_record(image=beach, description=Description({}, {"beach": 0.4}, rekognition))
    description_record(image=logo, description=Description({}, {"logo": 0.97, "text": 0.95}, azure))
    return {"beach": beach, "logo": logo, "azure": azure, "rekognition": rekognition}


def test_pictures_are_found_by_tag_with_their_labels(api_as, reviewer, tagged):
    response = api_as(reviewer).get(ENDPOINT, {"tag": "Beach"})
    assert response.status_code == 200
    (found,) = response.json()["results"]
    assert found["sha256"] == tagged["beach"].sha256
    assert found["labels"][0] == {"name": "car", "score": 0.99, "model": "azure-a"}
    assert {(label["name"], label["model"]) for label in found["labels"]} == {
        ("car", "azure-a"),
        ("beach", "azure-a"),
        ("beach", "rek-a"),
    }


def test_min_score_and_model_narrow_the_search(api_as, reviewer, tagged):
    client = api_as(reviewer)
    assert client.get(ENDPOINT, {"tag": "beach", "min_score": 0.95}).json()["results"] == []
    assert len(client.get(ENDPOINT, {"tag": "beach", "model": "rek-a"}).json()["results"]) == 1
    assert client.get(ENDPOINT, {"tag": "beach", "model": "rek-a", "min_score": 0.5}).json()["results"] == []
    assert [r["sha256"] for r in client.get(ENDPOINT, {"tag": "text"}).json()["results"]] == [tagged["logo"].sha256]


def test_relabelling_by_the_same_version_replaces_its_labels(tagged):
    description_record(image=tagged["beach"], description=Description({}, {"sand": 0.7}, tagged["azure"]))
    assert set(tagged["beach"].labels.filter(model_version=tagged["azure"]).values_list("name", flat=True)) == {"sand"}
    assert tagged["beach"].labels.filter(model_version=tagged["rekognition"]).count() == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [({}, "tag"), ({"tag": "x", "min_score": 2}, "min_score"), ({"tag": "x", "model": "no"}, "model")],
)
def test_bad_search_parameters_are_400(api_as, reviewer, tagged, params, field):
    response = api_as(reviewer).get(ENDPOINT, params)
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


def test_advertiser_users_and_labelers_cannot_search_every_picture(api_as, advertiser_user, labeler, tagged):
    assert api_as(advertiser_user).get(ENDPOINT, {"tag": "beach"}).status_code == 403
    assert api_as(labeler).get(ENDPOINT, {"tag": "beach"}).status_code == 403


def test_the_search_costs_a_fixed_number_of_queries(api_as, reviewer, tagged, django_assert_max_num_queries):
    client = api_as(reviewer)
    with django_assert_max_num_queries(8):
        client.get(ENDPOINT, {"tag": "beach"})
