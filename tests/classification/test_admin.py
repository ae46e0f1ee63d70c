"""The admin pages of classification render for an admin, and refuse what only services may do."""

import json

import pytest

from classification.services import image_from_bytes


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["image", "imagesource", "modelversion", "groundtruth"])
def test_admin_changelists_and_change_pages_render(client, admin_user, stock_red_jpeg, model):
    image = image_from_bytes(data=stock_red_jpeg, url="https://cdn.example.com/a.jpg")
    client.force_login(admin_user)
    assert client.get(f"/admin/classification/{model}/").status_code == 200
    if model == "image":
        page = client.get(f"/admin/classification/image/{image.pk}/change/")
        assert page.status_code == 200 and b"https://cdn.example.com/a.jpg" in page.content


@pytest.mark.django_db
def test_ground_truth_cannot_be_added_in_the_admin(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/admin/classification/groundtruth/add/").status_code == 403


@pytest.mark.django_db
def test_a_model_version_status_cannot_be_changed_in_the_admin(client, admin_user):
    """Retiring the active version by hand (then activating another) would skip promotion's re-classification."""
    from classification.services import model_version_ensure_active

    active = model_version_ensure_active()
    client.force_login(admin_user)
    response = client.post(
        f"/admin/classification/modelversion/{active.pk}/change/",
        {
            "name": active.name,
            "backend": active.backend,
            "params": json.dumps(active.params),
            "status": "retired",
            "metrics": "{}",
            "notes": "",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302
    active.refresh_from_db()
    assert active.status == "active"
