"""Retraining the builtin classifier: parameter search on the train split, candidates evaluated on the test
split, promotion re-classifying old predictions in the background while fixes keep winning."""

import io

import pytest
from django.core.management import call_command

from classification import cache
from classification.classifiers.builtin import BuiltinClassifier
from classification.models import GroundTruth, Image, ModelVersion, Prediction
from classification.promotion import model_promote
from classification.reclassify import reclassify_chunk
from classification.services import fix_record, image_from_bytes
from classification.synthetic import picture_bytes
from core.jobs import JobStatus
from datasets.export import export_params_build, export_run
from datasets.models import Evaluation
from datasets.services import export_request, search_request
from datasets.training import TrainingError, search_run

pytestmark = pytest.mark.django_db

KINDS = {"dealer": "Dealer", "stock": "Stock", "placeholder": "Placeholder"}
COLOURS = ["Red", "Blue", "Black", "White", "Grey", "Green", "Yellow", "Orange"]


@pytest.fixture
def bad_active():
    """The active builtin version has a broken Stock threshold: nearly everything looks like a Dealer photo."""
    ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).update(status=ModelVersion.Status.RETIRED)
    return ModelVersion.objects.create(
        name="builtin-bad",
        params={**BuiltinClassifier.DEFAULT_PARAMS, "stock_min_concentration": 0.99},
        status=ModelVersion.Status.ACTIVE,
    )


def synthetic_set(per_kind: int = 8) -> dict[str, tuple[bytes, str]]:
    """path → (JPEG bytes, true image type)."""
    return {
        f"/{kind}/{i}.jpg": (picture_bytes(kind=kind, color=COLOURS[i % 8], width=640, height=480, seed=i), label)
        for kind, label in KINDS.items()
        for i in range(per_kind)
    }


def labelled_pictures(pictures: dict) -> list[Image]:
    images = []
    for _path, (data, label) in pictures.items():
        image = image_from_bytes(data=data)
        GroundTruth.objects.create(image=image, attribute="image_type", value=label, source="consensus", votes=5)
        images.append(image)
    return images


def exported(**kw) -> object:
    export = export_request(params=export_params_build(attribute="image_type", **kw), enqueue=False)
    return export_run(export_id=export.pk)


def test_search_tries_settings_on_train_and_stores_the_best_as_evaluated_candidates(bad_active):
    labelled_pictures(synthetic_set(6))
    export = exported(test_fraction=0.5, seed=1)
    assert export.counts["train"] and export.counts["test"]

    search = search_run(search_id=search_request(export=export, settings_count=6, keep=4, enqueue=False).pk)

    assert search.status == JobStatus.DONE
    candidates = ModelVersion.objects.filter(status=ModelVersion.Status.CANDIDATE).order_by("name")
    assert candidates.count() == 4
    assert len([r for r in search.results if "params" in r]) == 6
    for version in candidates:
        assert version.metrics["train"]["n"] == sum(export.counts["train"].values())
        assert version.metrics["test"]["n"] == sum(export.counts["test"].values())
    best = ModelVersion.objects.get(name=f"builtin-search{search.pk}-1")
    active_eval = Evaluation.objects.get(export=export, model_version=bad_active)
    assert best.metrics["test"]["accuracy"] > active_eval.metrics["accuracy"]
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE) == bad_active  # nothing promoted yet


def test_a_search_needs_at_least_four_settings(bad_active, make_image, truth):
    truth(make_image(), "Dealer")
    export = exported()
    with pytest.raises(TrainingError, match="at least 4"):
        search_request(export=export, settings_count=3, keep=1, enqueue=False)


def test_shared_measurements_score_like_a_full_classification(bad_active):
    """The search measures each picture once for all settings; it must score as classify() would."""
    from datasets.training import _settings_scorers, parameter_settings

    pictures = synthetic_set(3)
    images = labelled_pictures(pictures)
    from datasets.evaluation import picture_decode

    defaults = dict(BuiltinClassifier.DEFAULT_PARAMS)
    settings = parameter_settings(base=bad_active.params, attribute="image_type", count=8, reference=defaults)
    settings.append({**defaults, "analysis_side": 64})  # a measurement parameter: must not share
    scorers = _settings_scorers(settings, "image_type")
    for image in images:
        with image.thumbnail.open("rb") as f:
            picture = picture_decode(f.read())
        for i, setting in enumerate(settings):
            expected = BuiltinClassifier(ModelVersion(params=setting)).classify(picture)["image_type"][0]
            assert scorers[i](picture) == expected, (i, setting)


def test_promoting_a_better_candidate_changes_served_values_but_not_fixed_ones(
    bad_active, pictures_served, api_as, admin_user, django_capture_on_commit_callbacks
):
    pictures = synthetic_set(8)
    urls = {pictures_served.add(path, data): label for path, (data, label) in pictures.items()}
    client = api_as(admin_user)

    def served() -> dict[str, dict]:
        response = client.post("/api/v1/classify/", {"urls": list(urls)}, format="json")
        assert response.status_code == 200
        return {r["url"]: r for r in response.json()["results"]}

    before = served()
    assert all(r["model"] == "builtin-bad" for r in before.values())
    wrong_before = [u for u, label in urls.items() if before[u]["image_type"] != label]
    assert wrong_before, "the bad version should get some pictures wrong"

    # Ground truth for every picture; one of the wrongly served pictures also gets a staff fix (to Dealer,
    # whatever it really is: the fix must keep winning after the promotion).
    by_sha = {r["sha256"]: u for u, r in before.items()}
    for image in Image.objects.filter(sha256__in=by_sha):
        GroundTruth.objects.create(
            image=image, attribute="image_type", value=urls[by_sha[image.sha256]], source="consensus", votes=5
        )
    fixed_url = next(u for u in wrong_before if urls[u] == "Stock")
    fixed_image = Image.objects.get(sha256=before[fixed_url]["sha256"])
    fix = fix_record(
        image=fixed_image, attribute="image_type", value="Dealer", user=admin_user, advertiser="", staff=True
    )
    cache.fix_push(ground_truth_id=fix.pk)
    truths_before = sorted(GroundTruth.objects.values_list("id", "image_id", "value", "source", "created_at"))

    export = exported(test_fraction=0.5, seed=2, include_conflicting=True)
    search = search_run(search_id=search_request(export=export, settings_count=6, keep=4, enqueue=False).pk)
    best = ModelVersion.objects.get(name=f"builtin-search{search.pk}-1")
    active_accuracy = Evaluation.objects.get(export=export, model_version=bad_active).metrics["accuracy"]
    assert best.metrics["test"]["accuracy"] > active_accuracy  # the candidate beats the active model on test

    with django_capture_on_commit_callbacks(execute=True):
        model_promote(model_version_id=best.pk)  # re-classification runs eagerly in tests

    after = served()
    changed = [u for u in urls if after[u]["image_type"] != before[u]["image_type"]]
    assert changed, "promotion should change served values of pictures classified before"
    for url in urls:
        if url == fixed_url:
            assert after[url]["image_type"] == "Dealer" and after[url]["source"] == "fix"
        else:
            assert after[url]["model"] == best.name
    assert sum(after[u]["image_type"] == label for u, label in urls.items() if u != fixed_url) > sum(
        before[u]["image_type"] == label for u, label in urls.items() if u != fixed_url
    )
    assert sorted(GroundTruth.objects.values_list("id", "image_id", "value", "source", "created_at")) == truths_before
    assert set(Prediction.objects.values_list("model_version__name", flat=True)) == {best.name}


def test_reclassification_leaves_pictures_alone_once_a_newer_version_is_active(bad_active):
    image = image_from_bytes(data=picture_bytes(kind="stock", color="Red", width=640, height=480, seed=1))
    first = ModelVersion.objects.create(name="first", params=dict(BuiltinClassifier.DEFAULT_PARAMS))
    second = ModelVersion.objects.create(name="second", params=dict(BuiltinClassifier.DEFAULT_PARAMS))
    model_promote(model_version_id=first.pk, enqueue=False)
    model_promote(model_version_id=second.pk, enqueue=False)

    assert reclassify_chunk(model_version_id=first.pk, image_ids=[image.pk]) == 0  # first is retired
    assert set(Prediction.objects.filter(image=image).values_list("model_version", flat=True)) == {bad_active.pk}
    assert reclassify_chunk(model_version_id=second.pk, image_ids=[image.pk]) == 1
    assert set(Prediction.objects.filter(image=image).values_list("model_version", flat=True)) == {second.pk}


def test_search_page_and_train_model_command(bad_active, admin_client, django_capture_on_commit_callbacks):
    labelled_pictures(synthetic_set(3))
    export = exported(test_fraction=0.5, seed=1)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/models/search/", {"export": export.pk, "settings_count": 4, "keep": 2})
    assert response.status_code == 302
    assert ModelVersion.objects.filter(status=ModelVersion.Status.CANDIDATE).count() == 2

    out = io.StringIO()
    call_command("train_model", "--export", str(export.pk), "--tries", "5", "--keep", "1", stdout=out)
    assert "train=" in out.getvalue() and "test=" in out.getvalue()
    name = ModelVersion.objects.filter(status=ModelVersion.Status.CANDIDATE).order_by("-created_at").first().name

    out = io.StringIO()
    call_command("train_model", "--promote", name, "--reclassify-now", stdout=out)
    assert f"{name} is the active builtin version" in out.getvalue()
    assert set(Prediction.objects.values_list("model_version__name", flat=True)) == {name}


def test_the_service_keeps_answering_while_old_predictions_are_refreshed(
    bad_active, pictures_served, api_as, admin_user
):
    pictures = synthetic_set(2)
    urls = [pictures_served.add(path, data) for path, (data, _label) in pictures.items()]
    client = api_as(admin_user)
    assert client.post("/api/v1/classify/", {"urls": urls}, format="json").status_code == 200
    better = ModelVersion.objects.create(name="better", params=dict(BuiltinClassifier.DEFAULT_PARAMS))

    model_promote(model_version_id=better.pk, enqueue=False)  # switched; nothing refreshed yet
    half = sorted(Image.objects.values_list("id", flat=True))[:3]
    reclassify_chunk(model_version_id=better.pk, image_ids=half)  # one chunk done, the rest still queued

    results = client.post("/api/v1/classify/", {"urls": urls}, format="json").json()["results"]
    assert all(r["image_type"] and r["error"] is None for r in results)
    assert {r["model"] for r in results} == {"builtin-bad", "better"}


def test_promotion_plans_chunks_covering_every_outdated_picture_once(bad_active, monkeypatch):
    from classification.tasks.promotion import reclassify_plan

    images = [
        image_from_bytes(data=picture_bytes(kind="stock", color=c, width=320, height=240, seed=i))
        for i, c in enumerate(COLOURS[:5])
    ]
    better = ModelVersion.objects.create(name="better", params=dict(BuiltinClassifier.DEFAULT_PARAMS))
    model_promote(model_version_id=better.pk, enqueue=False)
    chunks = []
    monkeypatch.setattr(
        "classification.tasks.promotion.reclassify_chunk_task.delay", lambda version_id, ids: chunks.append(ids)
    )

    assert reclassify_plan(model_version_id=better.pk, chunk_size=2) == 5

    assert [len(c) for c in chunks] == [2, 2, 1]
    assert sorted(i for c in chunks for i in c) == sorted(im.pk for im in images)
    for chunk in chunks:
        reclassify_chunk(model_version_id=better.pk, image_ids=chunk)
    assert set(Prediction.objects.values_list("model_version__name", flat=True)) == {"better"}
    assert reclassify_plan(model_version_id=better.pk, chunk_size=2) == 0


def test_an_interrupted_search_starts_over_without_duplicating_candidates(bad_active):
    from datetime import timedelta

    from django.utils import timezone

    from datasets.models import ParameterSearch

    labelled_pictures(synthetic_set(2))
    export = exported(test_fraction=0.5, seed=1)
    search = search_request(export=export, settings_count=4, keep=2, enqueue=False)
    ParameterSearch.objects.filter(pk=search.pk).update(status=JobStatus.RUNNING, started_at=timezone.now())
    assert search_run(search_id=search.pk).status == JobStatus.RUNNING  # another worker is on it
    assert not ModelVersion.objects.filter(status=ModelVersion.Status.CANDIDATE).exists()

    # That worker died after storing one candidate.
    ModelVersion.objects.create(name=f"builtin-search{search.pk}-1", params={}, status=ModelVersion.Status.CANDIDATE)
    ParameterSearch.objects.filter(pk=search.pk).update(started_at=timezone.now() - timedelta(hours=4))

    assert search_run(search_id=search.pk).status == JobStatus.DONE
    assert ModelVersion.objects.filter(status=ModelVersion.Status.CANDIDATE).count() == 2


def test_promotion_leaves_fixes_untouched(bad_active, admin_user, django_capture_on_commit_callbacks):
    from classification.selectors import image_values

    stock = image_from_bytes(data=picture_bytes(kind="stock", color="Red", width=640, height=480, seed=3))
    dealer = image_from_bytes(data=picture_bytes(kind="dealer", color="Blue", width=640, height=480, seed=4))
    staff = fix_record(
        image=stock, attribute="image_type", value="Placeholder", user=admin_user, advertiser="", staff=True
    )
    own = fix_record(image=dealer, attribute="color", value="Green", user=None, advertiser="acme", staff=False)
    assert own.pk
    truths = sorted(GroundTruth.objects.values_list("id", "image_id", "attribute", "value", "source", "created_at"))
    better = ModelVersion.objects.create(name="better", params=dict(BuiltinClassifier.DEFAULT_PARAMS))

    with django_capture_on_commit_callbacks(execute=True):
        model_promote(model_version_id=better.pk)

    assert set(Prediction.objects.values_list("model_version__name", flat=True)) == {"better"}  # refreshed
    assert (
        sorted(GroundTruth.objects.values_list("id", "image_id", "attribute", "value", "source", "created_at"))
        == truths
    )
    staff_view = image_values(image_ids=[stock.pk, dealer.pk])
    assert staff_view[stock.pk]["image_type"].value == "Placeholder"
    assert staff_view[stock.pk]["image_type"].source == "staff_fix"
    assert staff_view[stock.pk]["image_type"].fix.ground_truth_id == staff.pk
    acme_view = image_values(image_ids=[dealer.pk], advertiser="acme")
    assert (acme_view[dealer.pk]["color"].value, acme_view[dealer.pk]["color"].source) == ("Green", "advertiser_fix")
    assert acme_view[dealer.pk]["color"].fix.ground_truth_id == own.pk
