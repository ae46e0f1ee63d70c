"""The /datasets/ and /models/ pages and the exports API: admins only, thin over the services."""

import io
import zipfile

import pytest
from django.core.management import call_command
from django.urls import reverse

from classification.models import ModelVersion
from core.jobs import JobStatus
from datasets.export import export_params_build, export_run
from datasets.models import DatasetExport
from datasets.services import export_request

pytestmark = pytest.mark.django_db


def done_export(**kw) -> DatasetExport:
    kw.setdefault("attribute", "image_type")
    manifest_only = kw.pop("manifest_only", False)
    export = export_request(params=export_params_build(**kw), manifest_only=manifest_only, enqueue=False)
    return export_run(export_id=export.pk)


def dataset_routes(export_id: int, version_id: int) -> list[tuple[str, str]]:
    return [
        ("get", "/datasets/"),
        ("post", "/datasets/"),
        ("get", f"/datasets/{export_id}/"),
        ("get", f"/datasets/{export_id}/download/"),
        ("get", f"/datasets/{export_id}/manifest.csv"),
        ("get", "/models/"),
        ("post", "/models/evaluate/"),
        ("post", "/models/search/"),
        ("post", f"/models/{version_id}/promote/"),
        ("get", f"/models/evaluations/{export_id}/"),
        ("get", "/api/v1/exports/"),
        ("post", "/api/v1/exports/"),
        ("get", f"/api/v1/exports/{export_id}/"),
        ("get", f"/api/v1/exports/{export_id}/download/"),
        ("get", f"/api/v1/exports/{export_id}/manifest/"),
    ]


def test_a_non_admin_gets_404_on_every_dataset_route(client, make_user, make_image, truth):
    from core.roles import Role

    truth(make_image(), "Dealer")
    export = done_export()
    version = ModelVersion.objects.create(name="v-x", params={})
    for role in (Role.LABELER, Role.REVIEWER, Role.ADVERTISER):
        client.force_login(make_user(f"user-{role}", role))
        for method, path in dataset_routes(export.pk, version.pk):
            response = getattr(client, method)(path, {"attribute": "image_type"} if method == "post" else None)
            assert response.status_code == 404, (role, method, path)
    assert ModelVersion.objects.get(pk=version.pk).status == ModelVersion.Status.CANDIDATE
    assert DatasetExport.objects.count() == 1


def test_anonymous_api_caller_is_refused(api_client):
    assert api_client.get("/api/v1/exports/").status_code in (401, 403)


def test_api_post_answers_202_with_an_id_and_get_follows_it_to_done(
    api_as, admin_user, make_image, truth, django_capture_on_commit_callbacks
):
    for i in range(5):
        truth(make_image(), ["Dealer", "Stock"][i % 2])
    client = api_as(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/exports/", {"attribute": "image_type", "test_fraction": 0.4, "seed": 3}, format="json"
        )

    assert response.status_code == 202
    export_id = response.json()["id"]
    body = client.get(f"/api/v1/exports/{export_id}/").json()
    assert body["status"] == "done" and body["progress"] == 100
    assert sum(sum(v.values()) for v in body["counts"].values()) == 5
    assert body["download_url"].endswith(f"/api/v1/exports/{export_id}/download/")
    download = client.get(body["download_url"])
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert "manifest.csv" in archive.namelist()


def test_api_post_with_bad_parameters_answers_400_with_the_reason(api_as, admin_user):
    response = api_as(admin_user).post(
        "/api/v1/exports/", {"attribute": "image_type", "classes": ["Truck"]}, format="json"
    )
    assert response.status_code == 400
    assert "Truck" in response.json()["error"]["message"]
    assert DatasetExport.objects.count() == 0


def test_api_list_costs_a_bounded_number_of_queries(
    api_as, admin_user, make_image, truth, django_assert_max_num_queries
):
    truth(make_image(), "Dealer")
    for _ in range(5):
        done_export()
    client = api_as(admin_user)
    with django_assert_max_num_queries(6):
        response = client.get("/api/v1/exports/")
    assert response.json()["count"] == 5


def test_datasets_page_lists_exports_with_status_bars_and_diff(
    admin_client, make_image, truth, django_assert_max_num_queries
):
    for i in range(4):
        truth(make_image(), ["Dealer", "Stock"][i % 2], ago=10)
    done_export()
    truth(make_image(), "Placeholder")
    second = done_export()
    queued = export_request(params=export_params_build(attribute="color"), enqueue=False)

    with django_assert_max_num_queries(8):
        html = admin_client.get("/datasets/").content.decode()

    assert f'id="export-{second.pk}"' in html and f'id="export-{queued.pk}"' in html
    assert 'class="bar train"' in html
    assert "+1 −0 ~0" in html
    assert 'role="progressbar"' in html  # the queued one
    assert 'http-equiv="refresh"' in html
    detail = admin_client.get(f"/datasets/{second.pk}/").content.decode()
    assert "<strong>1</strong> added" in detail


def test_export_form_queues_an_export_and_redirects(
    admin_client, make_image, truth, django_capture_on_commit_callbacks
):
    truth(make_image(), "Dealer")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/datasets/",
            {
                "attribute": "image_type",
                "sources": ["consensus", "staff_fix"],
                "since_mode": "all",
                "min_width": 128,
                "min_height": 128,
                "test_fraction": 0.2,
                "seed": 0,
                "phash_threshold": 4,
                "manifest_only": "on",
            },
        )
    assert response.status_code == 302
    export = DatasetExport.objects.get()
    assert export.status == JobStatus.DONE and export.manifest_only
    assert export.params["sources"] == ["staff_fix", "consensus"]


def test_export_form_shows_an_actionable_error(admin_client):
    response = admin_client.post(
        "/datasets/",
        {
            "attribute": "image_type",
            "sources": ["consensus"],
            "since_mode": "date",
            "min_width": 128,
            "min_height": 128,
            "test_fraction": 0.2,
            "seed": 0,
            "phash_threshold": 4,
        },
    )
    assert response.status_code == 200
    assert "Pick a date" in response.content.decode()
    assert DatasetExport.objects.count() == 0


def test_local_download_is_streamed_not_linked_to_public_media(admin_client, make_image, truth):
    truth(make_image(), "Dealer")
    export = done_export(manifest_only=True)
    response = admin_client.get(reverse("datasets:dataset-download", args=[export.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert b"".join(response.streaming_content).startswith(b"sha256,split,label")


def test_export_dataset_command_runs_and_copies_the_result(make_image, truth, tmp_path):
    truth(make_image(), "Dealer")
    out = io.StringIO()
    target = tmp_path / "dataset.zip"
    call_command("export_dataset", "image_type", "--seed", "2", "--output", str(target), stdout=out)
    export = DatasetExport.objects.get()
    assert export.status == JobStatus.DONE and export.params["seed"] == 2
    assert zipfile.ZipFile(target).namelist()
    assert f"export #{export.pk}" in out.getvalue()
