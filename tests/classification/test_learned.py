"""Heads on the backbone's features: training, calibration, the learned backend, the feature cache, the API."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from classification import embedding, features, imaging, services, synthetic
from classification.classifiers import classifier_for
from classification.classifiers.base import ClassifierError
from classification.classifiers.learned import LearnedClassifier
from classification.heads import FEATURE_DIM, Head, calibration_report, head_evaluate, head_train
from classification.models import Embedding, ModelVersion, Prediction
from classification.vocabulary import Attribute

COLORS = ("Red", "Blue", "White", "Black")


def _write_folder(root: Path, *, seeds: range, size=(320, 240)) -> None:
    """A folder-per-class image-type set: DIR/<label>/<name>.jpg, the layout Keras and torchvision read."""
    labels = {"dealer": "Dealer", "stock": "Stock", "placeholder": "Placeholder"}
    for kind, label in labels.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            color = COLORS[seed % len(COLORS)]
            data = synthetic.picture_bytes(kind=kind, color=color, width=size[0], height=size[1], seed=seed)
            (root / label / f"{kind}-{seed}.jpg").write_bytes(data)


def _read_folder(root: Path) -> tuple[np.ndarray, list[str]]:
    paths = sorted(p for p in root.glob("*/*") if p.is_file())
    pictures = [imaging.decode(p.read_bytes()).picture for p in paths]
    return features.compute(pictures), [p.parent.name for p in paths]


@pytest.fixture(scope="module")
def type_sets(tmp_path_factory):
    train_dir, test_dir = tmp_path_factory.mktemp("train"), tmp_path_factory.mktemp("test")
    _write_folder(train_dir, seeds=range(0, 16))
    _write_folder(test_dir, seeds=range(1000, 1010), size=(400, 300))
    return _read_folder(train_dir), _read_folder(test_dir)


@pytest.fixture(scope="module")
def type_head(type_sets) -> Head:
    (x, y), _ = type_sets
    return head_train(attribute=Attribute.IMAGE_TYPE, features=x, labels=y)


def test_a_head_trained_on_a_generated_folder_set_separates_the_classes_on_another_set(type_sets, type_head):
    _, (x_test, y_test) = type_sets
    report = head_evaluate(type_head, features=x_test, labels=y_test)
    assert report["n"] == 30
    assert report["accuracy"] >= 0.95, report["confusion"]
    assert all(recall >= 0.9 for recall in report["per_class"].values()), report["per_class"]


def test_calibration_error_is_reported_and_bounded(type_sets, type_head):
    _, (x_test, y_test) = type_sets
    report = head_evaluate(type_head, features=x_test, labels=y_test)
    assert 0 <= report["ece"] <= 0.1, report["reliability"]
    assert sum(row["n"] for row in report["reliability"]) == len(y_test)
    assert type_head.temperature > 0


def test_calibration_report_measures_overconfidence():
    # always 0.9 sure of class 0, right 5 times in 10: ECE |0.9 - 0.5| = 0.4
    overconfident = calibration_report(np.tile([0.9, 0.1], (10, 1)), np.array([0] * 5 + [1] * 5))
    assert overconfident["ece"] == pytest.approx(0.4)
    assert overconfident["table"] == [
        {"bin": [0.8, 0.9], "n": 10, "confidence": pytest.approx(0.9), "accuracy": pytest.approx(0.5)}
    ]
    honest = calibration_report(np.tile([0.5, 0.5], (10, 1)), np.array([0, 1] * 5))
    assert honest["ece"] == pytest.approx(0.0)


def test_a_stored_head_serves_the_same_probabilities_from_json(type_sets, type_head):
    import json

    _, (x_test, _) = type_sets
    again = Head.from_dict(json.loads(json.dumps(type_head.to_dict())))
    np.testing.assert_allclose(again.probabilities(x_test), type_head.probabilities(x_test), atol=1e-6)


def test_training_refuses_a_single_class_and_unknown_labels():
    x = np.zeros((4, FEATURE_DIM))
    with pytest.raises(ValueError, match="at least two"):
        head_train(attribute="banner", features=x, labels=["yes"] * 4)
    with pytest.raises(ValueError, match="not among the classes"):
        head_train(attribute="banner", features=x, labels=["yes", "no", "maybe", "no"], classes=["yes", "no"])


def _banner_set(seeds: range) -> tuple[list[PILImage.Image], list[str]]:
    """Banner yes: a dealer photo with a bright strip of text across the bottom; no: the photo alone."""
    from PIL import ImageDraw

    pictures, labels = [], []
    for seed in seeds:
        photo = synthetic.picture(kind="dealer", color=COLORS[seed % 4], width=320, height=240, seed=seed)
        banner = photo.copy()
        draw = ImageDraw.Draw(banner)
        draw.rectangle([0, 180, 320, 240], fill=(250, 200, 0))
        draw.text((20, 195), f"CALL 555-{seed:04d} SALE!", fill=(200, 0, 0))
        pictures += [photo, banner]
        labels += ["no", "yes"]
    return pictures, labels


@pytest.fixture(scope="module")
def learned_params(type_head) -> dict:
    pictures, labels = _banner_set(range(12))
    banner = head_train(attribute=Attribute.BANNER, features=features.compute(pictures), labels=labels)
    return {
        "features": features.features_version(),
        "heads": {Attribute.IMAGE_TYPE: type_head.to_dict(), Attribute.BANNER: banner.to_dict()},
    }


@pytest.fixture
def learned_version(db, learned_params) -> ModelVersion:
    ModelVersion.objects.filter(backend="learned").update(status=ModelVersion.Status.RETIRED)
    return ModelVersion.objects.create(
        name="learned-test", backend="learned", params=learned_params, status=ModelVersion.Status.ACTIVE
    )


@pytest.mark.django_db
def test_the_learned_backend_answers_every_head_and_falls_back_to_builtin_for_colour(learned_version):
    classifier = classifier_for(learned_version)
    assert isinstance(classifier, LearnedClassifier)
    pictures, labels = _banner_set(range(500, 503))
    for picture, label in zip(pictures, labels, strict=True):
        values = classifier.classify(picture)
        assert values[Attribute.IMAGE_TYPE][0] == "Dealer"
        assert values[Attribute.BANNER][0] == label
        assert 0.5 <= values[Attribute.BANNER][1] <= 1
        assert values[Attribute.COLOR][0] is not None  # no colour head: the builtin's answer


@pytest.mark.django_db
def test_a_placeholder_gets_no_colour(learned_version):
    picture = synthetic.picture(kind="placeholder", color="Red", width=400, height=300, seed=77)
    values = classifier_for(learned_version).classify(picture)
    assert values[Attribute.IMAGE_TYPE][0] == "Placeholder"
    assert values[Attribute.COLOR] == (None, None)


@pytest.mark.django_db
def test_the_second_classification_of_a_picture_reads_its_features_instead_of_running_the_backbone(
    learned_version, monkeypatch
):
    runs: list[int] = []
    original = embedding.embed
    monkeypatch.setattr(embedding, "embed", lambda pictures: runs.append(len(pictures)) or original(pictures))
    picture = synthetic.picture(kind="stock", color="Blue", width=320, height=240, seed=9)
    picture.info["sha256"] = "ab" * 32
    first = classifier_for(learned_version).classify(picture)
    again = picture.copy()
    again.info["sha256"] = "ab" * 32
    second = classifier_for(learned_version).classify(again)
    assert runs == [1]
    assert first == second
    row = Embedding.objects.get(image_sha256="ab" * 32)
    assert row.backbone == features.features_version()
    assert len(bytes(row.vector)) == FEATURE_DIM * 2  # float16


@pytest.mark.django_db
def test_heads_trained_on_other_features_are_refused_not_misread(learned_params):
    version = ModelVersion(name="stale", backend="learned", params={**learned_params, "features": "other-g0+b1"})
    picture = synthetic.picture(kind="stock", color="Blue", width=320, height=240, seed=9)
    with pytest.raises(ClassifierError, match="retrain"):
        classifier_for(version).classify(picture)


@pytest.mark.django_db
def test_the_classify_api_returns_the_learned_values_and_the_banner(
    api_as, reviewer, picture_server, allow_loopback, learned_version, settings
):
    settings.SPOTCHECK_CLASSIFIER_BACKEND = "learned"
    pictures, labels = _banner_set(range(600, 601))
    for picture, label in zip(pictures, labels, strict=True):
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        picture_server.serve(f"/{label}.png", buffer.getvalue(), content_type="image/png")
    response = api_as(reviewer).post(
        "/api/v1/classify/", {"urls": [picture_server.url("/no.png"), picture_server.url("/yes.png")]}, format="json"
    )
    assert response.status_code == 200
    no, yes = response.json()["results"]
    assert (no["banner"], yes["banner"]) == ("no", "yes")
    assert no["image_type"] == yes["image_type"] == "Dealer"
    assert no["model"] == "learned-test"
    assert set(yes["scores"]) == {"image_type", "color", "banner"}
    # pictures classified on the classify queue, which passes their SHA-256: the backend stored their features
    assert Embedding.objects.count() == 2


@pytest.mark.django_db
def test_the_classify_stage_reads_a_pictures_stored_features_instead_of_running_the_backbone(
    learned_version, picture_server, allow_loopback, settings, monkeypatch
):
    settings.SPOTCHECK_CLASSIFIER_BACKEND = "learned"
    data = synthetic.picture_bytes(kind="stock", color="Blue", width=320, height=240, seed=9)
    picture_server.serve("/a.jpg", data)
    (check,) = services.urls_check(urls=[picture_server.url("/a.jpg")]).values()
    assert check.pending
    vector = features.compute([imaging.decode(data).picture])[0]
    features.features_store(vectors={hashlib.sha256(data).hexdigest(): vector})
    runs: list[int] = []
    original = embedding.embed
    monkeypatch.setattr(embedding, "embed", lambda pictures: runs.append(len(pictures)) or original(pictures))
    results = services.images_classify(image_ids=[check.image_id])
    assert results[check.image_id].status == "classified"
    assert runs == []  # the stored vector was read by SHA-256
    made = Prediction.objects.filter(image_id=check.image_id, model_version=learned_version)
    assert set(made.values_list("attribute", flat=True)) == {"image_type", "color", "banner"}


@pytest.mark.django_db
def test_the_classify_stage_costs_as_many_queries_for_six_pictures_as_for_two(
    learned_version, picture_server, allow_loopback, settings
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.SPOTCHECK_CLASSIFIER_BACKEND = "learned"

    def staged(seeds) -> list[int]:
        for seed in seeds:
            data = synthetic.picture_bytes(kind="dealer", color="Red", width=320, height=240, seed=seed)
            picture_server.serve(f"/batch-{seed}.jpg", data)
        checks = services.urls_check(urls=[picture_server.url(f"/batch-{seed}.jpg") for seed in seeds])
        return [check.image_id for check in checks.values()]

    counts = []
    for ids in (staged(range(700, 702)), staged(range(710, 716))):
        with CaptureQueriesContext(connection) as queries:
            results = services.images_classify(image_ids=ids)
        assert {result.status for result in results.values()} == {"classified"}
        counts.append(len(queries))
    assert counts[0] == counts[1]  # features read and stored, backend calls recorded: once per batch
    assert Embedding.objects.count() == 8
