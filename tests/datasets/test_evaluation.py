"""Evaluation on an export's test split: metrics, side by side, per advertiser; with stand-in classifiers so the
numbers are known (the builtin classifier is exercised in test_training.py)."""

import io

import pytest
from django.core.management import call_command

from classification.models import ModelVersion
from core.jobs import JobStatus
from datasets import evaluation
from datasets.evaluation import EvaluationError, evaluation_run, metrics_compute
from datasets.export import export_params_build, export_run
from datasets.models import Evaluation
from datasets.services import evaluation_request, export_request

from .conftest import jpeg_bytes

pytestmark = pytest.mark.django_db

RED, BLUE = (220, 20, 20), (20, 20, 220)


def test_metrics_count_accuracy_precision_recall_confusion_and_advertisers():
    outcomes = [
        ("Dealer", "Dealer", ["a"]),
        ("Dealer", "Stock", ["a"]),
        ("Stock", "Stock", ["b"]),
        ("Stock", "Stock", ["a", "b"]),
        ("Placeholder", "Dealer", []),
    ]
    m = metrics_compute(attribute="image_type", outcomes=outcomes)
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(3 / 5)
    assert m["classes"]["Dealer"] == {"precision": 0.5, "recall": 0.5, "support": 2}
    assert m["classes"]["Stock"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "support": 2}
    assert m["classes"]["Placeholder"] == {"precision": None, "recall": 0.0, "support": 1}
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert m["confusion"] == {
        "labels": ["Dealer", "Stock", "Placeholder"],
        "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 0]],
    }
    assert m["advertisers"] == {
        "a": {"n": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)},
        "b": {"n": 2, "correct": 2, "accuracy": 1.0},
    }


def test_a_model_that_answers_nothing_is_scored_as_the_display_default():
    assert evaluation.predicted_value("image_type", None) == "Placeholder"
    assert evaluation.predicted_value("color", None) == "(none)"


@pytest.fixture
def colour_export(make_image, truth):
    """All pictures in the test split: red ones are Dealer, blue ones Stock; advertisers a and b."""
    for i in range(6):
        red = i % 2 == 0
        image = make_image(thumb_bytes=jpeg_bytes(RED if red else BLUE))
        truth(image, "Dealer" if red else "Stock", source="advertiser_fix", advertiser="a" if i < 4 else "b")
    export = export_request(params=export_params_build(attribute="image_type", test_fraction=1.0), enqueue=False)
    return export_run(export_id=export.pk)


@pytest.fixture
def stand_in_models(monkeypatch):
    """'good' tells red from blue; 'lazy' says Dealer to everything."""

    def classify_fn(version, attribute):
        if version.name == "good":
            return lambda picture: "Dealer" if picture.getpixel((5, 5))[0] > 128 else "Stock"
        return lambda picture: "Dealer"

    monkeypatch.setattr(evaluation, "classify_fn", classify_fn)
    ModelVersion.objects.all().delete()  # the migration's builtin-1: these tests bring their own
    active = ModelVersion.objects.create(name="lazy", status=ModelVersion.Status.ACTIVE)
    candidate = ModelVersion.objects.create(name="good", status=ModelVersion.Status.CANDIDATE)
    return active, candidate


def test_active_and_candidate_are_evaluated_side_by_side_on_the_test_split(colour_export, stand_in_models):
    active, candidate = stand_in_models
    evaluations = evaluation_request(export=colour_export, model_versions=[active, candidate], enqueue=False)

    results = {e.model_version.name: e for e in evaluation_run(evaluation_ids=[e.pk for e in evaluations])}

    assert results["good"].status == JobStatus.DONE and results["good"].metrics["accuracy"] == 1.0
    assert results["lazy"].metrics["accuracy"] == 0.5
    assert results["lazy"].metrics["advertisers"]["b"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert results["lazy"].metrics["classes"]["Stock"]["recall"] == 0.0


def test_evaluation_page_shows_versions_side_by_side_in_bounded_queries(
    admin_client, colour_export, stand_in_models, django_assert_max_num_queries
):
    evaluations = evaluation_request(export=colour_export, model_versions=list(stand_in_models), enqueue=False)
    evaluation_run(evaluation_ids=[e.pk for e in evaluations])

    with django_assert_max_num_queries(6):
        html = admin_client.get(f"/models/evaluations/{colour_export.pk}/").content.decode()

    assert html.index(">lazy<") < html.index(">good<")  # active first
    assert 'class="confusion"' in html and "Accuracy per advertiser" in html
    assert "1.000" in html and "0.500" in html


def test_evaluate_form_queues_and_runs_an_evaluation(
    admin_client, colour_export, stand_in_models, django_capture_on_commit_callbacks
):
    active, candidate = stand_in_models
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/models/evaluate/", {"export": colour_export.pk, "versions": [active.pk, candidate.pk]}
        )
    assert response.status_code == 302
    assert Evaluation.objects.filter(status=JobStatus.DONE).count() == 2


def test_evaluate_model_command_prints_metrics_for_active_and_candidates(colour_export, stand_in_models):
    out = io.StringIO()
    call_command("evaluate_model", str(colour_export.pk), stdout=out)
    text = out.getvalue()
    assert "good (candidate): n=6 accuracy=1.000" in text
    assert "lazy (active): n=6 accuracy=0.500" in text
    assert "advertiser b: accuracy=0.500 n=2" in text


def test_an_attribute_no_model_produces_cannot_be_evaluated(make_image, truth, stand_in_models):
    truth(make_image(), "front", attribute="position")
    export = export_request(params=export_params_build(attribute="position"), enqueue=False)
    export = export_run(export_id=export.pk)
    with pytest.raises(EvaluationError, match="no model produces position"):
        evaluation_request(export=export, model_versions=list(stand_in_models), enqueue=False)


def test_models_page_lists_versions_and_forms(admin_client, stand_in_models, django_assert_max_num_queries):
    # A fixed number, whatever the rows: session, user, versions, evaluations, searches, training runs, the
    # forms' choices, the drift of the two attributes and the recent exports (14 since the learned backend).
    with django_assert_max_num_queries(14):
        html = admin_client.get("/models/").content.decode()
    assert "lazy" in html and "good" in html
    assert html.count(">Promote</button>") == 1  # only the candidate can be promoted
