"""Closing the loop: import a labelled dataset, train learned-head candidates on ground truth, promote the
best only when it beats the serving model, and serve what was learned (a banner head from a campaign)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from PIL import Image as PILImage
from PIL import ImageDraw

from classification import synthetic
from classification.models import Backend, GroundTruth, Image, ModelVersion
from datasets.importing import DatasetImportError, dataset_import, plan_read
from datasets.models import DatasetImport, Evaluation, TrainingRun

COLORS = ("Red", "Blue", "White", "Black")
KINDS = {"dealer": "Dealer", "stock": "Stock", "placeholder": "Placeholder"}


def _jpeg(picture: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    picture.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def write_type_folder(root: Path, *, seeds, size=(320, 240), folder_names=None) -> Path:
    for kind, label in KINDS.items():
        folder = root / (folder_names or {}).get(label, label)
        folder.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            data = synthetic.picture_bytes(
                kind=kind, color=COLORS[seed % len(COLORS)], width=size[0], height=size[1], seed=seed
            )
            (folder / f"{kind}-{seed}.jpg").write_bytes(data)
    return root


def banner_picture(seed: int, *, banner: bool) -> bytes:
    """A dealer photo, with a dealer's banner (a loud band with text) across the bottom when ``banner``."""
    picture = synthetic.picture(kind="dealer", color=COLORS[seed % len(COLORS)], width=320, height=240, seed=seed)
    if banner:
        draw = ImageDraw.Draw(picture)
        tone = ((seed * 53) % 200, 20 + (seed * 31) % 60, 160 + (seed * 7) % 90)
        draw.rectangle((0, 170, 320, 240), fill=tone)
        draw.text((12, 190), f"BEST DEALS {seed} - CALL NOW", fill=(255, 255, 255))
    return _jpeg(picture)


# --- import -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_refuses_unknown_labels_and_imports_nothing(tmp_path):
    write_type_folder(tmp_path, seeds=range(2))
    (tmp_path / "Banner").mkdir()
    (tmp_path / "Banner" / "x.jpg").write_bytes(synthetic.picture_bytes(kind="dealer", color="Red", seed=1))

    with pytest.raises(CommandError, match=r"unknown image_type labels: 'Banner' \(1 files\).*Dealer, Stock"):
        call_command("import_dataset", str(tmp_path), "--attribute", "image_type")
    assert not Image.objects.exists()
    assert not GroundTruth.objects.exists()


@pytest.mark.django_db
def test_import_counts_a_picture_met_twice_once_and_a_second_import_records_nothing_new(tmp_path, capsys):
    write_type_folder(tmp_path, seeds=range(3))
    # The same bytes under another name in the same class: one picture, one label.
    stock = tmp_path / "Stock"
    (stock / "copy.jpg").write_bytes((stock / "stock-0.jpg").read_bytes())

    call_command("import_dataset", str(tmp_path), "--attribute", "image_type")
    first = json.loads(capsys.readouterr().out)
    assert (first["files"], first["pictures"], first["duplicates"], first["recorded"]) == (10, 9, 1, 9)
    assert first["per_label"] == {"Dealer": 3, "Placeholder": 3, "Stock": 3}
    rows = GroundTruth.objects.filter(source=GroundTruth.Source.IMPORT, attribute="image_type")
    assert rows.count() == 9
    assert Image.objects.count() == 9

    call_command("import_dataset", str(tmp_path), "--attribute", "image_type")
    second = json.loads(capsys.readouterr().out)
    assert (second["recorded"], second["already"]) == (0, 9)
    assert rows.count() == 9


@pytest.mark.django_db
def test_a_picture_under_two_labels_is_recorded_under_neither(tmp_path):
    write_type_folder(tmp_path, seeds=range(2))
    (tmp_path / "Stock" / "same-as-dealer.jpg").write_bytes((tmp_path / "Dealer" / "dealer-0.jpg").read_bytes())

    report = dataset_import(plan=plan_read(directory=tmp_path, attribute="image_type"), reference="test")

    assert report.conflicting == 1
    assert report.recorded == 5
    dealer_sha = Image.objects.get(
        sha256=__import__("hashlib").sha256((tmp_path / "Dealer" / "dealer-0.jpg").read_bytes()).hexdigest()
    )
    assert not GroundTruth.objects.filter(image=dealer_sha).exists()


@pytest.mark.django_db
def test_import_reads_split_folders_and_the_exports_folder_spelling(tmp_path):
    (tmp_path / "train" / "front-3_4").mkdir(parents=True)
    (tmp_path / "test" / "REAR").mkdir(parents=True)
    (tmp_path / "train" / "front-3_4" / "a.jpg").write_bytes(synthetic.picture_bytes(kind="dealer", color="Red"))
    (tmp_path / "test" / "REAR" / "b.jpg").write_bytes(synthetic.picture_bytes(kind="dealer", color="Blue", seed=3))

    plan = plan_read(directory=tmp_path, attribute="position")

    assert sorted(label for _, label in plan.files) == ["front-3/4", "rear"]


def test_an_empty_folder_is_refused_with_a_message(tmp_path):
    (tmp_path / "Dealer").mkdir()
    with pytest.raises(DatasetImportError, match="holds no pictures"):
        plan_read(directory=tmp_path, attribute="image_type")


@pytest.mark.django_db
def test_a_zip_uploaded_on_the_import_page_is_imported_in_the_background(
    client, admin_user, tmp_path, django_capture_on_commit_callbacks
):
    write_type_folder(tmp_path / "dataset", seeds=range(2))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for path in sorted((tmp_path / "dataset").rglob("*.jpg")):
            archive.write(path, path.relative_to(tmp_path).as_posix())
    client.force_login(admin_user)

    upload = SimpleUploadedFile("cars.zip", buf.getvalue(), content_type="application/zip")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/datasets/import/", {"attribute": "image_type", "file": upload})

    assert response.status_code == 302
    job = DatasetImport.objects.get()
    assert (job.status, job.report["recorded"], job.report["files"]) == ("done", 6, 6)
    assert not job.file  # the zip is not kept once imported
    page = client.get("/datasets/import/")
    assert b"cars.zip" in page.content and b"6 recorded" in page.content


@pytest.mark.django_db
def test_the_import_page_does_not_exist_for_reviewers(client, reviewer):
    client.force_login(reviewer)
    assert client.get("/datasets/import/").status_code == 404


@pytest.mark.django_db
def test_a_zip_that_escapes_its_folder_is_refused(client, admin_user, django_capture_on_commit_callbacks):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("../Dealer/evil.jpg", synthetic.picture_bytes(kind="dealer", color="Red"))
    client.force_login(admin_user)

    upload = SimpleUploadedFile("evil.zip", buf.getvalue(), content_type="application/zip")
    with pytest.raises(DatasetImportError), django_capture_on_commit_callbacks(execute=True):
        client.post("/datasets/import/", {"attribute": "image_type", "file": upload})

    job = DatasetImport.objects.get()
    assert job.status == "failed" and "outside the archive" in job.error
    assert not Image.objects.exists()


# --- training -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_train_model_prints_one_json_line_per_candidate_and_leaves_ground_truth_alone(tmp_path, capsys):
    write_type_folder(tmp_path, seeds=range(12))
    call_command("import_dataset", str(tmp_path), "--attribute", "image_type")
    capsys.readouterr()
    truth_before = list(GroundTruth.objects.order_by("pk").values_list("pk", "value", "source"))

    call_command("train_model", "--attribute", "image_type", "--candidates", "4")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    candidates = [line for line in lines if "name" in line]
    assert len(candidates) == 4
    assert {c["feature_set"] for c in candidates} == {"embedding+builtin", "embedding"}
    assert all(0 <= c["test"]["ece"] <= 1 and c["test"]["n"] > 0 for c in candidates)
    accuracies = [c["test"]["accuracy"] for c in candidates]
    assert accuracies == sorted(accuracies, reverse=True)  # best first
    assert "active" in lines[-1] and lines[-1]["backend"] == "builtin"
    run = TrainingRun.objects.get()
    assert run.status == "done" and run.promoted is None  # not asked to promote
    versions = ModelVersion.objects.filter(backend=Backend.LEARNED, status=ModelVersion.Status.CANDIDATE)
    assert versions.count() == 4
    # Each candidate and the serving model were evaluated on the same split, for the evaluation page.
    assert Evaluation.objects.filter(export=run.export, status="done").count() == 5
    assert list(GroundTruth.objects.order_by("pk").values_list("pk", "value", "source")) == truth_before


@pytest.mark.django_db
def test_train_model_refuses_a_number_of_candidates_outside_four_to_eight(tmp_path):
    write_type_folder(tmp_path, seeds=range(3))
    call_command("import_dataset", str(tmp_path), "--attribute", "image_type")
    with pytest.raises(CommandError, match="between 4 and 8 candidates"):
        call_command("train_model", "--attribute", "image_type", "--candidates", "2")


@pytest.mark.django_db
def test_a_banner_campaigns_decided_items_train_a_banner_head_that_the_classify_api_returns(
    make_user, api_as, reviewer, pictures_served, settings, capsys
):
    from classification.services import image_from_bytes
    from core.roles import Role
    from labeling.models import Campaign, Item
    from labeling.services import vote_record

    settings.SPOTCHECK_CLASSIFIER_BACKEND = "learned"
    campaign = Campaign.objects.create(name="Banners", attribute="banner", votes_required=5, max_votes=9, gold_rate=0)
    people = [make_user(f"labeler{i}", Role.LABELER) for i in range(5)]
    for seed in range(24):
        for banner in (True, False):
            image = image_from_bytes(data=banner_picture(seed, banner=banner))
            item = Item.objects.create(campaign=campaign, image=image)
            for person in people:
                vote_record(user=person, item_id=item.pk, label="yes" if banner else "no", client_uuid=uuid.uuid4())
    assert Item.objects.filter(campaign=campaign, status=Item.Status.DECIDED).count() == 48
    assert GroundTruth.objects.filter(attribute="banner", source="consensus").count() == 48

    call_command("train_model", "--attribute", "banner", "--candidates", "4", "--promote-if-better")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    promoted = ModelVersion.objects.get(backend=Backend.LEARNED, status=ModelVersion.Status.ACTIVE)
    assert lines[-1] == {"promoted": promoted.name, "training_run": TrainingRun.objects.get().pk}
    assert {"banner", "image_type"} <= set(promoted.params["heads"])

    urls = [
        pictures_served.add("/fresh-yes.jpg", banner_picture(500, banner=True)),
        pictures_served.add("/fresh-no.jpg", banner_picture(501, banner=False)),
    ]
    response = api_as(reviewer).post("/api/v1/classify/", {"urls": urls}, format="json")
    assert response.status_code == 200, response.content
    yes, no = response.json()["results"]
    assert (yes["banner"], no["banner"]) == ("yes", "no")
    assert yes["model"] == promoted.name


@pytest.mark.django_db
def test_a_promoted_learned_version_serves_at_once_while_older_pictures_are_reclassified_in_chunks(
    tmp_path, capsys, pictures_served, api_as, reviewer, settings
):
    from classification.promotion import model_promote
    from classification.reclassify import outdated_image_ids, reclassify_chunk

    settings.SPOTCHECK_CLASSIFIER_BACKEND = "learned"
    write_type_folder(tmp_path, seeds=range(8))
    call_command("import_dataset", str(tmp_path), "--attribute", "image_type")
    call_command("train_model", "--attribute", "image_type", "--candidates", "4")
    capsys.readouterr()
    old = ModelVersion.objects.get(backend=Backend.LEARNED, status=ModelVersion.Status.ACTIVE)
    best = ModelVersion.objects.get(name=f"learned-run{TrainingRun.objects.get().pk}-1")
    truths = sorted(GroundTruth.objects.values_list("id", "image_id", "value", "source", "created_at"))
    known = Image.objects.order_by("pk").first()
    known_url = pictures_served.add("/known.jpg", (tmp_path / "Dealer" / "dealer-0.jpg").read_bytes())
    new_url = pictures_served.add("/new.jpg", synthetic.picture_bytes(kind="stock", color="Blue", seed=4242))
    client = api_as(reviewer)

    model_promote(model_version_id=best.pk, enqueue=False)
    first = outdated_image_ids(model_version=best, limit=5)
    reclassify_chunk(model_version_id=best.pk, image_ids=first)
    halfway = client.post("/api/v1/classify/", {"urls": [known_url, new_url]}, format="json")
    while ids := outdated_image_ids(model_version=best, after=first[-1]):
        reclassify_chunk(model_version_id=best.pk, image_ids=ids)
        first = ids

    assert halfway.status_code == 200
    known_result, new_result = halfway.json()["results"]
    assert new_result["model"] == best.name and new_result["image_type"] == "Stock"
    assert known_result["model"] in (old.name, best.name) and known_result["image_type"] == "Dealer"
    assert set(known.predictions.values_list("model_version__name", flat=True)) == {best.name}
    assert not outdated_image_ids(model_version=best)
    assert sorted(GroundTruth.objects.values_list("id", "image_id", "value", "source", "created_at")) == truths


def test_a_candidate_replaces_the_active_model_only_when_it_does_better_on_the_same_split():
    from datasets.learning import beats

    active = {"accuracy": 0.98, "balanced_accuracy": 0.97, "nll": 0.10}
    assert beats({"accuracy": 0.99, "balanced_accuracy": 0.90, "nll": 0.50}, active)
    assert not beats({"accuracy": 0.97, "balanced_accuracy": 0.99, "nll": 0.01}, active)
    # As often right: only surer of the right answers wins, and a model with no probabilities never ties its way in.
    assert beats({"accuracy": 0.98, "balanced_accuracy": 0.97, "nll": 0.05}, active)
    assert not beats({"accuracy": 0.98, "balanced_accuracy": 0.97, "nll": 0.10}, active)
    assert not beats({"accuracy": 0.98, "balanced_accuracy": 0.97, "nll": 0.05}, {**active, "nll": None})


@pytest.mark.django_db
def test_drift_compares_the_serving_model_on_ground_truth_newer_than_its_training_snapshot(make_image):
    from datetime import timedelta

    from django.utils import timezone

    from classification.models import Prediction
    from datasets.selectors import drift_of

    snapshot = timezone.now() - timedelta(days=1)
    version = ModelVersion.objects.create(
        name="learned-x", backend="learned", params={"trained_on": {"snapshot_at": snapshot.isoformat()}}
    )
    for i, (said, truth, days_ago) in enumerate(
        [("Dealer", "Dealer", 3), ("Stock", "Stock", 2), ("Dealer", "Stock", 0), ("Dealer", "Dealer", 0)]
    ):
        image = make_image(name=f"drift-{i}")
        Prediction.objects.create(image=image, attribute="image_type", value=said, score=0.9, model_version=version)
        GroundTruth.objects.create(
            image=image,
            attribute="image_type",
            value=truth,
            source="consensus",
            created_at=timezone.now() - timedelta(days=days_ago),
        )

    (row,) = drift_of(version)

    assert (row["older"], row["newer"]) == ({"n": 2, "accuracy": 1.0}, {"n": 2, "accuracy": 0.5})
    assert row["change"] == -0.5
